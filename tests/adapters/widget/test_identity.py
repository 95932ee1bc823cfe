"""The widget on another site, identified by a token the host site's backend signed."""

from __future__ import annotations

import importlib.util

import pytest
from litestar import Litestar, MediaType, get
from playwright.async_api import expect

from parley.core import store
from parley.testing import running_server

from .conftest import ROOT, new_context

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "host-site-shared-secret-0123456789"


def _mint():
    """docs/examples/widget_token.py, the example docs/widget.md shows."""
    spec = importlib.util.spec_from_file_location(
        "widget_token", ROOT / "docs" / "examples" / "widget_token.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mint_widget_token


async def test_signed_token_from_the_host_site(browser, start_server, fakes):
    server = await start_server({"web": {"auth_secret": SECRET, "require_auth": True}})
    token = _mint()("alice-42", SECRET)
    context = await new_context(browser)
    errors: list[str] = []
    try:
        # Without a token the server refuses the socket: the widget says so and stops retrying.
        anonymous = await context.new_page()
        anonymous.on("pageerror", lambda exc: errors.append(str(exc)))
        await anonymous.goto(f"{server.url}/")
        widget = anonymous.locator("[data-parley-widget]")
        await expect(widget.locator("[role=log]")).to_contain_text("Please sign in again")
        await expect(widget.locator(".status")).to_have_text("Not connected.")

        # A shop on another origin embeds the script; its backend mints the token (getToken).
        host_page = f"""<!doctype html><html lang="en"><title>Shop</title><h1>Shop</h1>
            <script src="{server.url}/widget.js" data-init="manual" data-template="solo"
                    data-title="Help"></script>
            <script>
              Parley.init({{ open: true, getToken: () => fetch("/parley-token").then((r) => r.text()) }});
            </script></html>"""

        @get("/", media_type=MediaType.HTML, sync_to_thread=False)
        def home() -> str:
            return host_page

        @get("/parley-token", media_type=MediaType.TEXT, sync_to_thread=False)
        def parley_token() -> str:
            return token  # in a real shop: behind its login, for the signed-in user

        shop = Litestar([home, parley_token])
        async with running_server(shop, host="127.0.0.1") as shop_url:
            # localhost and 127.0.0.1 are different origins on the same loopback interface.
            shop_url = shop_url.replace("127.0.0.1", "localhost")
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{shop_url}/")
            await _chat_as_alice(page, server, fakes)
    finally:
        await context.close()
    assert errors == []


async def _chat_as_alice(page, server, fakes) -> None:
    log = page.locator("[data-parley-widget] [role=log]")
    await expect(log).to_contain_text("Hi there!")
    fakes.llm.push("Hello, Alice.")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("who am I?")
    await box.press("Enter")
    await expect(log).to_contain_text("Hello, Alice.")
    await expect(page.get_by_role("dialog", name="Help")).to_be_visible()

    conversation = await store.get_conversation(
        await page.evaluate("__parleyTest.state().conversationId")
    )
    alice = await store.get_or_create_user("web", "jwt:alice-42")
    assert conversation.user_id == alice.id
    device = await page.evaluate(f"localStorage.getItem('parley:device:{server.url}')")
    assert device and len(device) >= 16
