"""The offline echo provider."""

from __future__ import annotations

import asyncio
from typing import Any

import pluggy
import pytest

from parley.core import hookspecs
from parley.core.config import ModelSettings, Settings
from parley.core.providers import LLMChunk, LLMProvider, LLMRequest, Usage
from parley.plugins.echo.llm import EchoLLM


def request(*messages: dict[str, Any]) -> LLMRequest:
    """A request of ``messages``."""
    return LLMRequest(messages=list(messages), model=ModelSettings())


async def collect(llm: EchoLLM, req: LLMRequest) -> list[LLMChunk]:
    """Every chunk of one call."""
    return [c async for c in llm.stream(req)]


async def test_reply_word_by_word_then_usage():
    req = request(
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "hello there"},
    )
    chunks = await collect(EchoLLM(), req)
    assert [c.text for c in chunks[:-1]] == ["You ", "said: ", "hello ", "there."]
    assert "".join(c.text for c in chunks) == "You said: hello there."
    assert chunks[-1] == LLMChunk(
        usage=Usage(prompt_tokens=5, completion_tokens=4), finish_reason="stop"
    )


async def test_answers_the_last_user_message():
    req = request(
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "You said: first."},
        {"role": "user", "content": "  second   one!  "},
    )
    chunks = await collect(EchoLLM(), req)
    assert "".join(c.text for c in chunks) == "You said: second one."


async def test_list_content_uses_text_parts():
    content = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
        {"type": "text", "text": "this"},
    ]
    chunks = await collect(EchoLLM(), request({"role": "user", "content": content}))
    assert "".join(c.text for c in chunks) == "You said: look at this."
    assert chunks[-1].usage == Usage(prompt_tokens=3, completion_tokens=5)


async def test_greeting_when_no_user_message():
    chunks = await collect(EchoLLM(), request({"role": "system", "content": "Greet the user."}))
    assert [c.text for c in chunks] == ["Hello!", ""]
    assert chunks[-1].usage == Usage(prompt_tokens=3, completion_tokens=1)
    assert chunks[-1].finish_reason == "stop"


async def test_deterministic():
    req = request({"role": "user", "content": "same again"})
    assert await collect(EchoLLM(), req) == await collect(EchoLLM(), req)


async def test_delay_between_chunks():
    """The first word comes at once; each later one waits ``delay`` (60 s here: it cannot come
    within the test's wait, whatever the machine's speed)."""
    req = request({"role": "user", "content": "one two three"})
    undelayed = await collect(EchoLLM(), req)
    chunks = EchoLLM(delay=60).stream(req)
    try:
        assert await asyncio.wait_for(anext(chunks), 5) == undelayed[0]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(chunks), 0.05)
    finally:
        await chunks.aclose()
    assert await collect(EchoLLM(delay=0.001), req) == undelayed


def test_is_an_llm_provider_and_registered():
    from parley.plugins.echo import plugin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="echo")
    registered: dict[str, Any] = {}
    pm.hook.register_llm_providers(register=registered.__setitem__)
    llm = registered["echo"](Settings())
    assert isinstance(llm, EchoLLM)
    assert isinstance(llm, LLMProvider)
    assert llm.name == "echo"
