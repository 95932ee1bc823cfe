"""The local LLM as the fallback of a cloud one: loaded at start-up, answering when it is down."""

from __future__ import annotations

from contextlib import aclosing

from parley.core import store
from parley.core.events import MessageCompleted
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.plugins.local.plugin import readiness


async def test_an_unreachable_server_falls_back_to_the_local_model(make_settings):
    llm = {
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",  # nothing listens on the discard port
        "fallbacks": [{"provider": "local"}],
    }
    persona = {"alex": {"system_prompt": "You are a helpful assistant.", "temperature": 0}}
    settings = make_settings({"llm": llm, "personas": persona})
    runtime = Runtime(settings, make_plugin_manager((), entry_points=False))
    await runtime.start(adapters=False)
    try:
        assert readiness({"llm": runtime.llm})["llm"] in ("loading", "ready")
        user = await store.get_or_create_user("test", "ann")
        opened = await runtime.engine.open(user.id, "test")
        inbound = Inbound(text="What is the capital of France?")
        turn = runtime.engine.turn(opened.conversation.id, inbound)
        async with aclosing(turn) as events:
            done = [e async for e in events if isinstance(e, MessageCompleted)]
        assert "Paris" in done[-1].text and done[-1].status == "complete"
        assert readiness({"llm": runtime.llm}) == {"llm": "ready"}
    finally:
        await runtime.stop()
