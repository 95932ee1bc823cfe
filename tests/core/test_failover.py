"""Failover chains through the runtime: local OpenAI-compatible servers that fail, hang or stall."""

from __future__ import annotations

import asyncio

import pytest

from parley.core import store
from parley.core.config import SettingsError
from parley.core.events import ErrorEvent, MessageCompleted, TextDelta
from parley.core.inbound import Inbound
from parley.core.runtime import Runtime
from parley.core.telemetry import BreakerChanged, FallbackTaken, ProviderCall
from parley.fake_services import FakeOpenAIServer
from parley.testing import collect


def llm_settings(primary: FakeOpenAIServer, *fallbacks: FakeOpenAIServer, **extra):
    return {
        "llm": {
            "provider": "openai",
            "base_url": primary.base_url,
            "api_key": "primary-key",
            "model": "primary-model",
            "first_token_timeout": 1.0,
            "stall_timeout": 1.0,
            "fallbacks": [
                {"provider": "openai", "base_url": f.base_url, "api_key": "k2", "model": "m2"}
                for f in fallbacks
            ],
            **extra,
        }
    }


async def run_turn(runtime: Runtime, text: str = "hello", conversation_id: str | None = None):
    if conversation_id is None:
        user = await store.get_or_create_user("test", "u1")
        conversation_id = (await runtime.engine.open(user.id, "test")).conversation.id
    events = await collect(runtime.engine.turn(conversation_id, Inbound(text=text)))
    return conversation_id, events


def completed(events) -> MessageCompleted:
    return next(e for e in events if isinstance(e, MessageCompleted))


@pytest.fixture
async def servers():
    async with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        yield one, two


async def started(make_settings, settings_extra) -> tuple[Runtime, list]:
    runtime = Runtime(make_settings(settings_extra))
    records: list = []
    runtime.telemetry.subscribe(records.append)
    await runtime.start(adapters=False)
    return runtime, records


async def test_primary_500_goes_to_the_fallback_at_once(make_settings, servers):
    primary, fallback = servers
    primary.push(("status", 500))
    fallback.push(("text", ["From ", "the fallback."]))
    runtime, records = await started(make_settings, llm_settings(primary, fallback))
    try:
        _, events = await run_turn(runtime)
        message = completed(events)
        assert (message.status, message.text) == ("complete", "From the fallback.")
        assert message.provider == "openai#2"
        assert not [e for e in events if isinstance(e, ErrorEvent)]
        # One request each: the primary's own SDK retries are off because a fallback follows.
        assert (primary.requests, fallback.requests) == (1, 1)
        assert fallback.bodies[0]["model"] == "m2"
        stored = await store.get_message(message.message_id)
        assert stored.metadata["llm_provider"] == "openai#2"
        calls = [r for r in records if isinstance(r, ProviderCall)]
        assert [(c.provider, c.error) for c in calls] == [
            ("openai", "provider_unavailable"),
            ("openai#2", None),
        ]
        assert [r for r in records if isinstance(r, FallbackTaken)] == [
            FallbackTaken("llm", "openai", "openai#2", "provider_unavailable")
        ]
    finally:
        await runtime.stop()


async def test_no_first_token_goes_to_the_fallback(make_settings, servers):
    primary, fallback = servers
    primary.push(("silent",))
    fallback.push(("text", ["Still here."]))
    runtime, records = await started(
        make_settings, llm_settings(primary, fallback, first_token_timeout=0.3)
    )
    try:
        _, events = await run_turn(runtime)
        assert completed(events).text == "Still here."
        calls = [(r.provider, r.error) for r in records if isinstance(r, ProviderCall)]
        assert calls == [("openai", "provider_timeout"), ("openai#2", None)]
        for _ in range(100):  # the silent request was abandoned (its connection closed)
            if primary.closed:
                break
            await asyncio.sleep(0.02)
        assert primary.closed == 1
    finally:
        await runtime.stop()


async def test_a_stall_mid_reply_fails_with_the_partial_text(make_settings, servers):
    primary, fallback = servers
    primary.push(("stall", ["Half a ", "thought"]))
    runtime, _ = await started(make_settings, llm_settings(primary, fallback, stall_timeout=0.3))
    try:
        _, events = await run_turn(runtime)
        message = completed(events)
        assert (message.status, message.text) == ("failed", "Half a thought")
        errors = [e for e in events if isinstance(e, ErrorEvent)]
        assert [e.code for e in errors] == ["provider_stalled"]
        assert events.index(errors[0]) == events.index(message) + 1
        assert fallback.requests == 0  # not continued elsewhere
        stored = await store.get_message(message.message_id)
        assert (stored.status, stored.content) == ("failed", "Half a thought")
        assert stored.metadata["llm_provider"] == "openai"
    finally:
        await runtime.stop()


async def test_the_breaker_opens_and_a_probe_closes_it(make_settings, servers):
    primary, fallback = servers
    primary.push(("status", 503))
    fallback.push(("text", ["ok"]))
    extra = {"breaker_threshold": 2, "breaker_cooldown": 0.5}
    runtime, records = await started(make_settings, llm_settings(primary, fallback, **extra))
    try:
        conversation_id, _ = await run_turn(runtime)
        await run_turn(runtime, "again", conversation_id)
        assert primary.requests == 2
        # Open: the primary is skipped while it cools down.
        _, events = await run_turn(runtime, "third", conversation_id)
        assert completed(events).provider == "openai#2"
        assert primary.requests == 2
        await asyncio.sleep(0.6)
        primary.behaviours.clear()
        primary.push(("text", ["Back again."]))
        _, events = await run_turn(runtime, "fourth", conversation_id)
        assert (completed(events).text, primary.requests) == ("Back again.", 3)
        states = [r.state for r in records if isinstance(r, BreakerChanged)]
        assert states == ["open", "half_open", "closed"]
    finally:
        await runtime.stop()


async def test_every_provider_down_fails_the_reply(make_settings, servers):
    primary, fallback = servers
    primary.push(("status", 500))
    fallback.push(("status", 429))
    settings = llm_settings(primary, fallback)
    settings["llm"]["fallbacks"][0]["max_retries"] = 0  # the last one keeps its retries otherwise
    runtime, _ = await started(make_settings, settings)
    try:
        _, events = await run_turn(runtime)
        assert completed(events).status == "failed"
        assert [e.code for e in events if isinstance(e, ErrorEvent)] == ["provider_rate_limited"]
        assert not [e for e in events if isinstance(e, TextDelta)]
    finally:
        await runtime.stop()


async def test_a_single_provider_has_watchdogs_too(make_settings, servers):
    primary, _ = servers
    primary.push(("silent",))
    settings = llm_settings(primary, first_token_timeout=0.3)
    runtime, _ = await started(make_settings, settings)
    try:
        _, events = await run_turn(runtime)
        assert completed(events).status == "failed"
        assert [e.code for e in events if isinstance(e, ErrorEvent)] == ["provider_timeout"]
        assert primary.requests == 1
    finally:
        await runtime.stop()


def test_a_fallback_without_provider_stops_start_up(make_settings):
    settings = make_settings({"llm": {"fallbacks": [{"model": "x"}]}})
    with pytest.raises(SettingsError, match=r"llm\.fallbacks"):
        Runtime(settings).build_providers()


def test_an_unknown_fallback_provider_is_named(make_settings):
    settings = make_settings({"llm": {"fallbacks": [{"provider": "nope"}]}})
    with pytest.raises(SettingsError, match=r"llm\.fallbacks\[0\]\.provider"):
        Runtime(settings).build_providers()


async def test_a_fallback_may_have_its_own_first_token_timeout(make_settings, servers):
    primary, slow = servers  # e.g. a local model: slower to its first token
    primary.push(("status", 500))
    slow.push(("text", ["Slow but sure."], 0.6))
    settings = llm_settings(primary, slow, first_token_timeout=0.3)
    settings["llm"]["fallbacks"][0]["first_token_timeout"] = 5
    runtime, _ = await started(make_settings, settings)
    try:
        _, events = await run_turn(runtime)
        assert (completed(events).status, completed(events).text) == ("complete", "Slow but sure.")
    finally:
        await runtime.stop()


def test_a_bad_fallback_timeout_is_named(make_settings):
    settings = make_settings({"llm": {"fallbacks": [{"provider": "echo", "stall_timeout": -1}]}})
    with pytest.raises(SettingsError, match=r"llm\.fallbacks\[0\]\.stall_timeout"):
        Runtime(settings).build_providers()


async def test_loading_a_model_is_not_a_stall(make_settings):
    from parley import hookimpl
    from parley.core.plugins import make_plugin_manager
    from parley.core.providers import LLMChunk

    class SlowToLoad:  # like the local model: loads once, then answers at once
        name = "slow-to-load"
        ready = False

        async def load(self):
            if not self.ready:
                await asyncio.sleep(0.5)
                self.ready = True

        async def stream(self, request):
            await self.load()
            yield LLMChunk(text="Loaded and ready.")

    class Plugin:
        @hookimpl
        def register_llm_providers(self, register):
            register("slow", lambda settings: SlowToLoad())

    pm = make_plugin_manager((), entry_points=False, extra=[("slow", Plugin())])
    settings = make_settings({"llm": {"provider": "slow", "first_token_timeout": 0.2}})
    runtime = Runtime(settings, pm)
    await runtime.start(adapters=False)
    try:
        _, events = await run_turn(runtime)
        assert (completed(events).status, completed(events).text) == (
            "complete",
            "Loaded and ready.",
        )
    finally:
        await runtime.stop()


@pytest.mark.parametrize(
    ("section", "status"),
    [({}, "failed"), ({"first_token_timeout": 3}, "complete")],
)
async def test_a_provider_may_bring_its_own_watchdog_and_settings_win(
    make_settings, section, status
):
    from parley import hookimpl
    from parley.core.plugins import make_plugin_manager
    from parley.core.providers import LLMChunk

    class Impatient:  # declares a first-token watchdog shorter than its answer takes
        name = "impatient"
        first_token_timeout = 0.2

        async def stream(self, request):
            await asyncio.sleep(0.6)
            yield LLMChunk(text="Late.")

    class Plugin:
        @hookimpl
        def register_llm_providers(self, register):
            register("impatient", lambda settings: Impatient())

    pm = make_plugin_manager((), entry_points=False, extra=[("impatient", Plugin())])
    runtime = Runtime(make_settings({"llm": {"provider": "impatient", **section}}), pm)
    await runtime.start(adapters=False)
    try:
        _, events = await run_turn(runtime)
        assert completed(events).status == status
    finally:
        await runtime.stop()
