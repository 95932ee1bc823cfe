"""The widget in Debian's Chromium against a real server: streaming, history, reconnects, characters."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from parley.core import store
from parley.core.providers import ProviderError
from parley.testing import Step

from .conftest import artifact

pytestmark = pytest.mark.asyncio(loop_scope="session")

WIDGET = "[data-parley-widget]"
LOG = f"{WIDGET} [role=log]"
GREETING = "Hi there!"


def pieces(text: str, delay: float = 0.12) -> Step:
    """A scripted reply streamed word by word, ``delay`` seconds apart."""
    words = text.split(" ")
    return Step([w + " " for w in words[:-1]] + [words[-1]], delay=delay)


async def bubbles(page) -> list[str]:
    """The texts of the complete messages in the log, in order."""
    return await page.locator(f"{LOG} .msg .bubble").all_inner_texts()


async def send(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


async def conversation_id(page) -> str:
    return await page.evaluate("__parleyTest.state().conversationId")


async def open_demo(page, path: str = "/") -> None:
    await page.goto(path)
    await expect(page.locator(LOG)).to_contain_text(GREETING)
    await expect(page.locator(f"{WIDGET} .status")).to_have_text("Online")


async def test_reply_streams_in_and_is_announced_once_complete(page, fakes):
    final = "Streaming arrives in the widget piece by piece, as it is written."
    fakes.llm.push(pieces(final))
    await open_demo(page)
    await expect(page.locator(f"{WIDGET} .launcher")).to_have_attribute("aria-expanded", "true")
    await send(page, "hello widget")

    # Partial text is on screen while the reply streams, outside the live log.
    partial = await page.wait_for_function(
        """() => {
            const host = document.querySelector("[data-parley-widget]").shadowRoot;
            const b = host.querySelector(".live .msg.assistant.streaming .bubble");
            return b && b.textContent.split(" ").length >= 3 ? b.textContent : null;
        }"""
    )
    partial_text = await partial.json_value()
    assert final.startswith(partial_text) and partial_text != final
    assert "Streaming" not in await page.locator(LOG).inner_text()
    await expect(page.locator(f"{WIDGET} .live [aria-hidden]")).to_have_count(0)

    await expect(page.locator(LOG)).to_contain_text(final)
    assert await bubbles(page) == [GREETING, "hello widget", final]
    names = await page.locator(f"{LOG} .msg.assistant .name").all_text_contents()
    assert names == ["Alex:", "Alex:"]
    await expect(page.locator(f"{WIDGET} .typing")).to_be_hidden()
    await page.screenshot(path=artifact("widget-open.png"))


async def test_reload_shows_the_history_and_continues(page, fakes):
    fakes.llm.push("First answer.")
    await open_demo(page)
    await send(page, "one")
    await expect(page.locator(LOG)).to_contain_text("First answer.")
    before = await conversation_id(page)

    await page.reload()
    await expect(page.locator(LOG)).to_contain_text("First answer.")
    assert await bubbles(page) == [GREETING, "one", "First answer."]
    assert await conversation_id(page) == before

    fakes.llm.push("Second answer.")
    await send(page, "two")
    await expect(page.locator(LOG)).to_contain_text("Second answer.")
    assert await bubbles(page) == [GREETING, "one", "First answer.", "two", "Second answer."]
    assert await conversation_id(page) == before


async def test_server_restart_reconnects_and_sends_what_was_typed_offline(page, server, fakes):
    fakes.llm.push("Before the restart.")
    await open_demo(page)
    await send(page, "hello")
    await expect(page.locator(LOG)).to_contain_text("Before the restart.")
    conversation = await conversation_id(page)

    await server.stop()
    status = page.locator(f"{WIDGET} .status")
    await expect(status).to_have_text(re.compile("Reconnecting"))
    await send(page, "typed while offline")
    queued = page.locator(f"{WIDGET} .msg.user", has_text="typed while offline")
    await expect(queued.locator(".meta")).to_have_text("Will be sent when the connection is back")

    fakes.llm.push(pieces("After the restart.", 0.02))
    await server.start()  # same database, same port
    await expect(status).to_have_text("Online", timeout=15_000)
    await expect(page.locator(LOG)).to_contain_text("After the restart.")
    await expect(queued.locator(".meta")).to_be_hidden()
    assert await bubbles(page) == [
        GREETING,
        "hello",
        "Before the restart.",
        "typed while offline",
        "After the restart.",
    ]
    assert await conversation_id(page) == conversation
    stored = [(m.role, m.content) for m in await store.list_messages(conversation, limit=50)]
    assert stored == [
        ("assistant", GREETING),
        ("user", "hello"),
        ("assistant", "Before the restart."),
        ("user", "typed while offline"),
        ("assistant", "After the restart."),
    ]


async def test_a_drop_mid_reply_resumes_without_duplicates_or_gaps(page, fakes):
    long = "This reply is long enough to be cut off by a dropped connection before it ends."
    fakes.llm.push(pieces(long, 0.1))
    await open_demo(page)
    conversation = await conversation_id(page)
    await send(page, "tell me something long")
    await page.wait_for_function(
        """() => {
            const b = document.querySelector("[data-parley-widget]").shadowRoot
                .querySelector(".msg.assistant.streaming .bubble");
            return b && b.textContent.split(" ").length >= 4;
        }"""
    )
    await page.evaluate("__parleyTest.dropConnection()")

    cut = page.locator(f"{LOG} .msg.assistant[data-status=interrupted]")
    await expect(cut).to_have_count(1, timeout=10_000)
    stored = [m for m in await store.list_messages(conversation, limit=50) if m.role == "assistant"]
    assert stored[-1].status == "interrupted"
    assert long.startswith(stored[-1].content)
    await expect(cut.locator(".bubble")).to_have_text(stored[-1].content)
    await expect(cut.locator(".meta")).to_have_text("(interrupted)")

    fakes.llm.push("Carrying on.")
    await send(page, "go on")
    await expect(page.locator(LOG)).to_contain_text("Carrying on.")
    assert await bubbles(page) == [
        GREETING,
        "tell me something long",
        stored[-1].content,
        "go on",
        "Carrying on.",
    ]


async def test_several_characters_answer_with_their_names(page, fakes):
    fakes.llm.push(pieces("I am Maya.", 0.03))
    fakes.llm.push(pieces("And I am Leo.", 0.03))
    await open_demo(page, "/?template=duo")
    await expect(page.locator(f"{WIDGET} .subtitle")).to_have_text("With Maya and Leo")
    await send(page, "hello both")
    await expect(page.locator(LOG)).to_contain_text("And I am Leo.")
    fakes.llm.push("Only me.")
    await send(page, "@Leo just you")
    await expect(page.locator(LOG)).to_contain_text("Only me.")

    messages = page.locator(f"{LOG} .msg.assistant")
    names = await messages.locator(".name").all_text_contents()
    texts = await messages.locator(".bubble").all_inner_texts()
    assert list(zip(names, texts, strict=True))[1:] == [
        ("Maya:", "I am Maya."),
        ("Leo:", "And I am Leo."),
        ("Leo:", "Only me."),
    ]
    await page.screenshot(path=artifact("widget-characters.png"))


async def test_an_ended_conversation_offers_a_new_one(page, fakes):
    await open_demo(page)
    first = await conversation_id(page)
    await send(page, "goodbye")  # a termination phrase of the language pack
    log = page.locator(LOG)
    await expect(log).to_contain_text("Take care!")
    await expect(log.locator(".note")).to_contain_text("This conversation has ended.")
    await page.get_by_role("button", name="Start a new conversation").click()
    await expect(log.locator(".note").last).to_have_text("A new conversation has started.")
    await expect(log.locator(".msg.assistant .bubble").last).to_have_text(GREETING)
    assert await conversation_id(page) != first

    fakes.llm.push("Fresh start.")
    await send(page, "hello again")
    await expect(log).to_contain_text("Fresh start.")
    second = await conversation_id(page)
    stored = await store.list_messages(second, limit=10)
    assert [m.content for m in stored] == [GREETING, "hello again", "Fresh start."]

    # Typing after the end starts the next conversation too, and the message goes there.
    await send(page, "bye")
    await expect(log.locator(".note").last).to_contain_text("This conversation has ended.")
    fakes.llm.push("Third time.")
    await send(page, "one more thing")
    await expect(log).to_contain_text("Third time.")
    third = await conversation_id(page)
    assert third not in (first, second)
    stored = await store.list_messages(third, limit=10)
    assert [m.content for m in stored] == [GREETING, "one more thing", "Third time."]


async def test_errors_are_told_in_plain_words(page, fakes):
    fakes.llm.push(Step(error=ProviderError("upstream 500 from the model")))
    await open_demo(page)
    await send(page, "hello?")
    note = page.locator(f"{LOG} .note.error")
    await expect(note).to_have_text(
        "Sorry, something went wrong while answering. Please try again."
    )
    assert "upstream" not in await page.locator(LOG).inner_text()
    await expect(page.locator(f"{LOG} .msg.assistant:visible")).to_have_count(1)  # the greeting
    await expect(page.locator(f"{WIDGET} .typing")).to_be_hidden()

    await page.get_by_role("textbox", name="Message").fill("x" * 4001)
    await page.get_by_role("button", name="Send message").click()
    await expect(note.nth(1)).to_have_text(
        "That message is too long. Please shorten it and try again."
    )
    await expect(page.get_by_role("textbox", name="Message")).to_have_value("x" * 4001)

    fakes.llm.push("Working again.")
    await send(page, "and now?")
    await expect(page.locator(LOG)).to_contain_text("Working again.")


async def test_keyboard_labels_and_contrast(page, fakes):
    await open_demo(page)
    widget = page.locator(WIDGET)
    await expect(widget.locator("[role=log]")).to_have_attribute("aria-label", "Messages")
    await expect(page.get_by_role("dialog", name="Chat: Solo")).to_be_visible()
    for name in ("Send message", "Close chat"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Start voice input")).to_be_visible()

    # The launcher toggles the panel from the keyboard; opening focuses the message box.
    launcher = page.locator(f"{WIDGET} .launcher")
    await launcher.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(launcher).to_have_attribute("aria-label", "Open chat: Chat: Solo")
    await page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused()
    fakes.llm.push("Typed with the keyboard only.")
    await page.keyboard.type("no mouse")
    await page.keyboard.press("Enter")
    await expect(page.locator(LOG)).to_contain_text("Typed with the keyboard only.")
    await expect(box).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Start voice input")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Send message")).to_be_focused()
    # Escape closes the panel and gives focus back to the launcher.
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")

    ratios = await page.evaluate(CONTRAST)
    assert all(ratio >= 4.5 for ratio in ratios.values()), ratios


CONTRAST = """() => {
  const root = document.querySelector("[data-parley-widget]").shadowRoot;
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (node) => {
    for (; node; node = node.parentElement || (node.getRootNode() && node.getRootNode().host)) {
      const c = getComputedStyle(node).backgroundColor;
      if (c && !c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return c;
    }
    return "rgb(255, 255, 255)";
  };
  const ratio = (sel) => {
    const node = root.querySelector(sel);
    const a = lum(getComputedStyle(node).color), b = lum(bg(node));
    return Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 100) / 100;
  };
  const out = {};
  for (const sel of [".msg.user .bubble", ".msg.assistant .bubble", ".msg.assistant .name",
                     "h2", ".status", "textarea", ".launcher", ".send"]) out[sel] = ratio(sel);
  return out;
}"""


async def test_a_message_from_another_tab_shows_in_order(page, fakes):
    fakes.llm.push("Answer to the other tab.")
    await open_demo(page)
    other = await page.context.new_page()  # same browser profile: same device, same conversation
    await open_demo(other)
    await send(other, "typed in the other tab")
    await expect(page.locator(LOG)).to_contain_text("Answer to the other tab.")
    assert await bubbles(page) == [GREETING, "typed in the other tab", "Answer to the other tab."]
    await other.close()
    fakes.llm.push("Own answer.")
    await send(page, "and here")
    await expect(page.locator(LOG)).to_contain_text("Own answer.")
    assert await bubbles(page) == [
        GREETING,
        "typed in the other tab",
        "Answer to the other tab.",
        "and here",
        "Own answer.",
    ]


async def test_only_a_page_that_opts_in_gets_the_widget_object(browser, server):
    """The ``parley:mounted`` event (the widget object) is a test hook: a production page, one
    without ``window.PARLEY_TEST_HOOKS``, never gets it."""
    listen = """window.__mounted = 0;
        window.addEventListener("parley:mounted", () => { window.__mounted += 1; });"""
    for opted_in in (False, True):
        context = await browser.new_context(base_url=server.url)
        flag = "window.PARLEY_TEST_HOOKS = true;" if opted_in else ""
        await context.add_init_script(script=flag + listen)
        try:
            page = await context.new_page()
            await open_demo(page)
            assert await page.evaluate("window.__mounted") == (1 if opted_in else 0)
            assert await page.evaluate("typeof window.__parleyTest") == "undefined"
        finally:
            await context.close()
