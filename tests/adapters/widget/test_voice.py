"""Voice in the browser: Chromium's fake microphone -> transcript -> reply audio played in order."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from parley.core import store
from parley.core.providers import LiveTranscript, SpeechStarted

from .conftest import HEARD, artifact
from .test_browser import LOG, WIDGET, open_demo, pieces

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_fake_microphone_gives_a_transcript_and_a_spoken_reply(page, fakes):
    reply = "Here is a spoken answer. It has a second sentence, spoken after the first."
    fakes.llm.push(pieces(reply, 0.02))
    await open_demo(page)
    await page.get_by_role("button", name="Start voice input").click()
    mic = page.get_by_role("button", name="Stop voice input")
    await expect(mic).to_have_attribute("aria-pressed", "true")

    await expect(page.locator(LOG)).to_contain_text(HEARD, timeout=15_000)
    await expect(page.locator(LOG)).to_contain_text(reply)
    await page.wait_for_function("__parleyTest.playedChunks >= 5", timeout=15_000)
    await page.screenshot(path=artifact("widget-voice.png"))
    await mic.click()
    await expect(page.get_by_role("button", name="Start voice input")).to_have_attribute(
        "aria-pressed", "false"
    )

    stats = await page.evaluate("__parleyTest.stats")
    assert stats["sentAudioFrames"] > 0  # PCM16 from the AudioWorklet went out
    assert "transcription_finished" in stats["frames"]
    assert "audio_complete" in stats["frames"]
    played = [tuple(p) for p in stats["played"]]
    reply_id = played[0][0]
    assert [p for p in played if p[0] == reply_id] == sorted(p for p in played if p[0] == reply_id)
    assert {p[1] for p in played} >= {0, 1}  # both sentences were spoken
    messages = await page.evaluate("__parleyTest.messages()")
    assert [m["text"] for m in messages if m["role"] == "user"] == [HEARD]


async def test_stop_button_silences_the_reply(page, fakes):
    words = " ".join(f"word{i}" for i in range(120))
    fakes.llm.push(pieces(f"A long spoken reply. {words}.", 0.01))
    await open_demo(page)
    await page.get_by_role("button", name="Start voice input").click()
    await expect(page.locator(LOG)).to_contain_text(HEARD, timeout=15_000)
    await page.get_by_role("button", name="Stop voice input").click()

    # The server has sent all of the reply (text and audio); the widget is still playing it.
    await page.wait_for_function(
        "__parleyTest.playedChunks >= 2 && __parleyTest.stats.frames.includes('turn_complete')",
        timeout=15_000,
    )
    stop = page.get_by_role("button", name="Stop the reply")
    await expect(stop).to_be_visible()
    await stop.click()
    await expect(stop).to_be_hidden()
    stats = await page.evaluate("__parleyTest.stats")
    assert stats["stoppedChunks"] > 0

    # The server heard it: ``interrupted`` came back, and the reply is stored interrupted.
    cut = page.locator(f"{LOG} .msg.assistant[data-status=interrupted]")
    await expect(cut).to_have_count(1)
    await expect(cut.locator(".meta")).to_have_text("(interrupted)")
    assert "interrupted" in await page.evaluate("__parleyTest.stats.frames")
    reply_id = await cut.get_attribute("data-id")
    stored = await store.get_message(reply_id)
    assert stored.status == "interrupted"
    assert stored.content.startswith("A long spoken reply.")  # the text is kept
    assert stored.metadata["interrupted_by"] == "client"
    assert stored.metadata["sentences_played"] >= 1
    await expect(page.locator(f"{WIDGET} .typing")).to_be_hidden()
    # All of the reply had arrived (turn_complete) and nothing is scheduled: nothing more plays.
    assert await page.evaluate("__parleyTest.widget.player.live.size") == 0
    assert await page.evaluate("__parleyTest.playedChunks") == stats["playedChunks"]


async def test_speaking_over_a_reply_interrupts_it(page, fakes):
    sentences = " ".join(f"Sentence {i} is spoken here." for i in range(12))
    fakes.llm.push(pieces(f"A slow spoken reply. {sentences}", 0.1))
    await open_demo(page)
    await page.get_by_role("button", name="Start voice input").click()
    await expect(page.locator(LOG)).to_contain_text(HEARD, timeout=15_000)
    await page.wait_for_function("__parleyTest.playedChunks >= 2", timeout=15_000)

    # The visitor talks over the reply while it is still being written and spoken.
    fakes.llm.push("Yes, go ahead.")
    live = fakes.stt.sessions[-1]
    live.push(SpeechStarted(), LiveTranscript("wait", is_final=False))
    cut = page.locator(f"{LOG} .msg.assistant[data-status=interrupted]")
    await expect(cut).to_have_count(1)
    await expect(cut.locator(".meta")).to_have_text("(interrupted)")
    await expect(page.locator(f"{WIDGET} .stop")).to_be_hidden()
    cut_id = await cut.get_attribute("data-id")
    assert await page.evaluate("__parleyTest.widget.player.live.size") == 0  # silent at once
    played_of_cut = f"__parleyTest.stats.played.filter(([id]) => id === {cut_id!r}).length"
    played = await page.evaluate(played_of_cut)

    live.push(LiveTranscript("wait a moment", is_final=True, speech_final=True))
    await expect(page.locator(LOG)).to_contain_text("Yes, go ahead.")
    # The cut turn has no turn_complete: the next one's must still clear the typing indicator.
    await page.wait_for_function("__parleyTest.stats.frames.includes('turn_complete')")
    await expect(page.locator(f"{WIDGET} .typing")).to_be_hidden()
    # The next turn is over, so the cut one was too: not a chunk of it played after the cut.
    assert await page.evaluate(played_of_cut) == played
    states = [m["state"] for m in await page.evaluate("__parleyTest.messages()")]
    assert "sent" not in states
    texts = await page.locator(f"{LOG} .msg:visible .bubble").all_inner_texts()
    assert texts[1] == HEARD and texts[3:] == ["wait a moment", "Yes, go ahead."]
    assert "Sentence 11" not in texts[2]  # cut short
    await page.get_by_role("button", name="Stop voice input").click()
