"""The memory plugin: summaries in the background, stored on the user, injected later, erasable."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx

from parley import hookimpl
from parley.core import store
from parley.core.events import TurnCompleted
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.providers import LLMRequest
from parley.core.runtime import Runtime
from parley.plugins.memory import SUMMARY_PROMPT, MemoryPlugin, MemorySettings, erase_memory
from parley.server import create_app
from parley.testing import ScriptedLLM, collect, running_server

SUMMARY_START = SUMMARY_PROMPT.split("\n", 1)[0]


class TwoQueues:
    """Chat requests answered by ``chat``, summary requests by ``summary`` (after ``gate``)."""

    name = "two-queues"

    def __init__(self) -> None:
        self.chat = ScriptedLLM()
        self.summary = ScriptedLLM()
        self.gate = asyncio.Event()
        self.gate.set()

    async def stream(self, request: LLMRequest):
        if request.messages[0]["content"].startswith(SUMMARY_START):
            await self.gate.wait()
            source = self.summary
        else:
            source = self.chat
        async for chunk in source.stream(request):
            yield chunk


@asynccontextmanager
async def started(
    make_settings, memory: dict[str, Any]
) -> AsyncIterator[tuple[Runtime, TwoQueues]]:
    llm = TwoQueues()

    class Provider:
        @hookimpl
        def register_llm_providers(self, register):
            register("two-queues", lambda settings: llm)

    settings = make_settings({"llm": {"provider": "two-queues"}, "memory": memory})
    pm = make_plugin_manager((), entry_points=False, extra=[("provider", Provider())])
    runtime = Runtime(settings, pm)
    await runtime.start(adapters=False)
    try:
        yield runtime, llm
    finally:
        await runtime.stop()


def plugin(runtime: Runtime) -> MemoryPlugin:
    found = runtime.pm.get_plugin("memory")
    assert isinstance(found, MemoryPlugin)
    return found


async def _open(runtime: Runtime, external_id: str = "ana") -> tuple[str, str]:
    user = await store.get_or_create_user("test", external_id)
    opened = await runtime.engine.open(user.id, "test")
    return user.id, opened.conversation.id


async def test_summary_is_stored_and_added_to_later_conversations(make_settings):
    async with started(make_settings, {"enabled": True, "max_words": 50}) as (runtime, llm):
        user_id, conversation_id = await _open(runtime)
        llm.chat.push("Nice to meet you, Ana.")
        await collect(runtime.engine.turn(conversation_id, Inbound(text="I'm Ana, I love hiking")))
        assert llm.summary.requests == []  # nothing until the conversation ends
        llm.summary.push("Ana loves hiking.")
        await runtime.engine.end(conversation_id, "user_ended")
        await plugin(runtime).tasks.wait()

        assert (await store.get_user(user_id)).memory == "Ana loves hiking."
        request = llm.summary.requests[0]
        assert "at most 50 words" in request.messages[0]["content"]
        prompt = request.messages[1]["content"]
        assert prompt.startswith("Current memory:\n(nothing yet)")
        assert "User: I'm Ana, I love hiking\nAlex: Nice to meet you, Ana." in prompt

        _, later = await _open(runtime)
        await collect(runtime.engine.turn(later, Inbound(text="Hi again")))
        system = llm.chat.requests[-1].messages[0]["content"]
        assert system.endswith(
            "What you remember about the user from earlier conversations:\nAna loves hiking."
        )

        llm.summary.push("NONE")  # nothing new: the memory stays
        await runtime.engine.end(later, "user_ended")
        await plugin(runtime).tasks.wait()
        assert (
            "Current memory:\nAna loves hiking." in llm.summary.requests[1].messages[1]["content"]
        )
        assert (await store.get_user(user_id)).memory == "Ana loves hiking."


async def test_every_n_turns_in_the_background(make_settings):
    async with started(make_settings, {"enabled": True, "every_turns": 2}) as (runtime, llm):
        user_id, conversation_id = await _open(runtime)
        await collect(runtime.engine.turn(conversation_id, Inbound(text="I live in Porto")))
        await plugin(runtime).tasks.wait()
        assert llm.summary.requests == []

        llm.gate.clear()  # the summary is stuck at the LLM...
        llm.summary.push("Lives in Porto, has a dog.")
        events = await collect(runtime.engine.turn(conversation_id, Inbound(text="I have a dog")))
        assert isinstance(events[-1], TurnCompleted)  # ...and the turn finished anyway
        assert len(plugin(runtime).tasks) == 1
        assert (await store.get_user(user_id)).memory is None
        llm.gate.set()
        await plugin(runtime).tasks.wait()
        assert (await store.get_user(user_id)).memory == "Lives in Porto, has a dog."


async def test_off_by_default(make_settings):
    async with started(make_settings, {}) as (runtime, llm):
        user_id, conversation_id = await _open(runtime)
        await collect(runtime.engine.turn(conversation_id, Inbound(text="I'm Bo")))
        await runtime.engine.end(conversation_id, "user_ended")
        assert len(plugin(runtime).tasks) == 0
        assert llm.summary.requests == []
        assert (await store.get_user(user_id)).memory is None


async def test_shutdown_cancels_a_summary_that_hangs(make_settings):
    async with started(make_settings, {"enabled": True, "shutdown_grace": 0}) as (runtime, llm):
        _, conversation_id = await _open(runtime)
        await collect(runtime.engine.turn(conversation_id, Inbound(text="I'm Cy")))
        llm.gate.clear()
        await runtime.engine.end(conversation_id, "user_ended")
        (task,) = plugin(runtime).tasks.running()
    assert task.cancelled()  # runtime.stop() did not wait for the LLM


async def test_erase_route(make_settings):
    settings: Callable[..., Any] = make_settings
    runtime = Runtime(settings({"memory": {"erase_token": "s3cret"}}))
    async with running_server(create_app(runtime.settings, runtime)) as url:
        user = await store.get_or_create_user("test", "dee")
        await store.set_user_memory(user.id, "Dee likes tea.")
        path = f"{url}/api/v1/users/{user.id}/memory"
        async with httpx.AsyncClient() as client:
            assert (await client.delete(path)).status_code == 401
            wrong = await client.delete(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert (await store.get_user(user.id)).memory == "Dee likes tea."
            right = await client.delete(path, headers={"Authorization": "Bearer s3cret"})
            assert right.status_code == 204
            assert (await store.get_user(user.id)).memory is None
            missing = await client.delete(
                f"{url}/api/v1/users/00000000-0000-0000-0000-000000000000/memory",
                headers={"Authorization": "Bearer s3cret"},
            )
            assert missing.status_code == 404


async def test_erase_route_is_off_without_a_token(make_settings):
    runtime = Runtime(make_settings())
    async with running_server(create_app(runtime.settings, runtime)) as url:
        user = await store.get_or_create_user("test", "eve")
        async with httpx.AsyncClient() as client:
            response = await client.delete(
                f"{url}/api/v1/users/{user.id}/memory", headers={"Authorization": "Bearer x"}
            )
        assert response.status_code == 403
        assert "memory.erase_token" in response.json()["error"]["message"]


def test_docs_describe_every_memory_setting():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    section = docs.split("### `[memory]`", 1)[1].split("###", 1)[0]
    for field in fields(MemorySettings):
        assert f"| `{field.name}` |" in section, field.name


def test_shipped_settings_spell_out_every_memory_default():
    shipped = Path(__file__).resolve().parents[2] / "settings" / "settings.toml"
    data = tomllib.loads(shipped.read_text())["memory"]
    default = MemorySettings()
    for field in fields(MemorySettings):
        if field.name == "model":
            assert field.name not in data  # shown commented out
            continue
        assert data[field.name] == getattr(default, field.name), field.name


async def test_the_callers_erase_route_exists_only_with_the_memory_plugin(make_settings):
    """The web adapter mounts ``DELETE /api/v1/users/me/memory`` only while the ``memory`` plugin
    is loaded, and it is in the OpenAPI document exactly then."""
    settings = make_settings({"llm": {"provider": "echo"}})
    route = "/api/v1/users/me/memory"
    for disable, mounted in ((("memory",), False), ((), True)):
        runtime = Runtime(settings, make_plugin_manager(disable, entry_points=False))
        async with running_server(create_app(settings, runtime)) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                response = await http.delete(route, headers={"X-Device-ID": "device-mem"})
                assert response.status_code == (200 if mounted else 404), disable
                paths = (await http.get("/schema/openapi.json")).json()["paths"]
                assert (route in paths) == mounted


async def test_erasing_takes_effect_at_the_next_turn(make_settings):
    async with started(make_settings, {"enabled": True}) as (runtime, llm):
        user_id, conversation_id = await _open(runtime, "eve")
        await store.set_user_memory(user_id, "Eve plays chess.")
        await collect(runtime.engine.turn(conversation_id, Inbound(text="Hello")))
        assert llm.chat.requests[-1].messages[0]["content"].endswith("Eve plays chess.")
        assert await erase_memory(user_id)
        await collect(runtime.engine.turn(conversation_id, Inbound(text="Hello again")))
        assert "Eve plays chess" not in llm.chat.requests[-1].messages[0]["content"]
        # Any writer in this process (the web adapter's own erase route writes the store):
        await store.set_user_memory(user_id, "Eve plays go.")
        await collect(runtime.engine.turn(conversation_id, Inbound(text="Hi")))
        assert llm.chat.requests[-1].messages[0]["content"].endswith("Eve plays go.")
        await store.set_user_memory(user_id, None)
        await collect(runtime.engine.turn(conversation_id, Inbound(text="Still there?")))
        assert "Eve plays go" not in llm.chat.requests[-1].messages[0]["content"]


async def test_a_kept_memory_is_not_used_while_memory_is_off(make_settings):
    async with started(make_settings, {}) as (runtime, llm):
        user_id, conversation_id = await _open(runtime, "fay")
        await store.set_user_memory(user_id, "Fay likes jazz.")
        await collect(runtime.engine.turn(conversation_id, Inbound(text="Hi")))
        assert "Fay likes jazz" not in llm.chat.requests[-1].messages[0]["content"]
