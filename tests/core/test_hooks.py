"""One test per hook (test_hook_<name>); tests/core/test_docs.py checks that none is missing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from litestar import get
from litestar.di import NamedDependency
from litestar.testing import AsyncTestClient
from msgspec import Meta

from parley import hookimpl
from parley.core import store
from parley.core.adapter_context import AdapterContext
from parley.core.config import InvalidSetting, SettingsError
from parley.core.events import ErrorEvent, MessageCompleted, MessageStarted, Transcript
from parley.core.inbound import Inbound
from parley.core.plugin_context import PluginContext
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.core.tools import Tool
from parley.server import create_app
from parley.testing import FakeSTT, ScriptedLLM, Step, collect, tool_call
from parley.testing import ToneTTS as FakeTTS


class Recorder:
    """A plugin that records what it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []


async def _conversation(engine, template_id=None):
    user = await store.get_or_create_user("test", "hooks")
    return (await engine.open(user.id, "test", template_id=template_id)).conversation


def _runtime(make_settings, *plugins, extra=None) -> Runtime:
    settings = make_settings(extra)
    pm = make_plugin_manager(
        (), entry_points=False, extra=[(f"p{i}", p) for i, p in enumerate(plugins)]
    )
    return Runtime(settings, pm)


async def test_hook_register_llm_providers(make_settings):
    scripted = ScriptedLLM(["from the plugin"])

    class Plugin:
        @hookimpl
        def register_llm_providers(self, register):
            register("scripted", lambda settings: scripted)

    runtime = _runtime(make_settings, Plugin(), extra={"llm": {"provider": "scripted"}})
    await runtime.start(adapters=False)
    try:
        assert runtime.llm.primary is scripted  # inside its failover chain
        assert {"openai", "echo", "scripted"} <= set(runtime.registry.llm)
    finally:
        await runtime.stop()


async def test_hook_register_stt_providers(make_settings):
    class Plugin:
        @hookimpl
        def register_stt_providers(self, register):
            register("fake", lambda settings: FakeSTT())

    runtime = _runtime(make_settings, Plugin(), extra={"stt": {"provider": "fake"}})
    await runtime.start(adapters=False)
    try:
        assert isinstance(runtime.stt.primary, FakeSTT)
        assert runtime.engine.stt is runtime.stt
    finally:
        await runtime.stop()


async def test_hook_register_tts_providers(make_settings):
    class Plugin:
        @hookimpl
        def register_tts_providers(self, register):
            register("fake", lambda settings: FakeTTS())

    runtime = _runtime(make_settings, Plugin(), extra={"tts": {"provider": "fake"}})
    await runtime.start(adapters=False)
    try:
        assert isinstance(runtime.tts.primary, FakeTTS)
    finally:
        await runtime.stop()


async def test_hook_register_adapters(make_settings):
    events: list[str] = []
    given: list[Any] = []

    @get("/fake-adapter")
    async def ping() -> dict[str, str]:
        return {"adapter": "up"}

    class FakeAdapter:
        name = "fake"

        def __init__(self, context):
            given.append(context)
            self.context = context

        def route_handlers(self):
            return [ping]

        async def start(self):
            # What a transport drives exists once the runtime started.
            context = self.context
            assert context.engine.settings is context.settings
            assert context.conversations.find("c1") is None
            assert context.locks is context.engine.locks
            context.inbox.register("fake", self.answer)
            events.append("start")

        async def answer(self, item):
            return {}

        async def stop(self):
            events.append("stop")

    class Plugin:
        @hookimpl
        def register_adapters(self, register):
            register("fake", FakeAdapter)
            register("disabled", lambda context: None)

    runtime = _runtime(make_settings, Plugin())
    app = create_app(runtime.settings, runtime)
    (context,) = given
    assert isinstance(context, AdapterContext) and isinstance(context, PluginContext)
    assert not isinstance(context, Runtime)
    assert not hasattr(context, "runtime") and not hasattr(context, "adapters")
    assert context.settings is runtime.settings and context.store is store
    assert context.has_plugin("web") and not context.has_plugin("nope")
    with pytest.raises(RuntimeError, match="not started"):
        context.engine  # noqa: B018 - before start-up
    async with AsyncTestClient(app) as client:
        response = await client.get("/fake-adapter")
        assert response.json() == {"adapter": "up"}
        assert events == ["start"]
    assert events == ["start", "stop"]
    assert set(runtime.adapters) == {"fake", "web"}  # "web" is built in; "disabled" gave None


async def test_hook_register_routes(make_settings):
    """A route reaches the running instance through the ``context`` dependency: the very
    context ``startup`` got, never the runtime."""

    class Plugin:
        context: PluginContext | None = None

        @hookimpl
        def startup(self, context):
            self.context = context

        @hookimpl
        def register_routes(self, register):
            register(extra)

    plugin = Plugin()

    @get("/extra")
    async def extra(context: NamedDependency[PluginContext]) -> dict[str, Any]:
        assert type(context) is PluginContext and context is plugin.context
        return {"answer": 42, "llm": context.llm.name, "model": context.settings.llm.model}

    runtime = _runtime(make_settings, plugin)
    async with AsyncTestClient(create_app(runtime.settings, runtime)) as client:
        model = runtime.settings.llm.model
        assert (await client.get("/extra")).json() == {"answer": 42, "llm": "echo", "model": model}
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["database"] == "ok"
        assert health.json()["providers"]["llm"] == "echo"


async def test_hook_startup(make_settings):
    seen = Recorder()

    class Plugin:
        @hookimpl
        async def startup(self, context):
            seen.calls.append(("startup", context))

    runtime = _runtime(make_settings, Plugin())
    await runtime.start(adapters=False)
    try:
        ((name, context),) = seen.calls
        assert name == "startup" and isinstance(context, PluginContext)
        assert not isinstance(context, Runtime) and not hasattr(context, "engine")
        assert context.settings is runtime.settings and context.llm is runtime.llm
        assert context.store is store
        user = await context.store.get_or_create_user("test", "ctx")
        conv = (await runtime.engine.open(user.id, "test")).conversation
        said = await context.say(conv.id, "a word from a plugin")
        assert any(isinstance(e, MessageCompleted) for e in said)
        assert (await store.list_messages(conv.id))[-1].content == "a word from a plugin"
        ended = await context.end(conv.id, "plugin_ended")
        assert (ended.status, ended.reason_ended) == ("ended", "plugin_ended")
    finally:
        await runtime.stop()


async def test_hook_shutdown(make_settings):
    seen = Recorder()
    release = asyncio.Event()

    class Plugin:
        @hookimpl
        def startup(self, context):
            self.tasks = context.tasks("slow")
            self.tasks.spawn(release.wait())

        @hookimpl
        def shutdown(self, context):
            seen.calls.append(("shutdown", isinstance(context, PluginContext), len(self.tasks)))

    plugin = Plugin()
    runtime = _runtime(make_settings, plugin)
    await runtime.start(adapters=False)
    assert seen.calls == []
    await runtime.stop()
    # shutdown saw the task still running; the runtime cancelled it afterwards
    assert seen.calls == [("shutdown", True, 1)]
    assert len(plugin.tasks) == 0


async def test_hook_conversation_started(make_engine):
    seen = Recorder()

    class Plugin:
        @hookimpl
        async def conversation_started(self, conversation):
            seen.calls.append(("started", conversation.template_id))

    engine = make_engine(plugins=(Plugin(),))
    await _conversation(engine)
    assert seen.calls == [("started", "solo")]


async def test_hook_conversation_ended(make_engine):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def conversation_ended(self, conversation, reason):
            seen.calls.append((conversation.status, reason))

    engine = make_engine(plugins=(Plugin(),))
    conv = await _conversation(engine)
    await collect(engine.turn(conv.id, Inbound(text="goodbye")))
    assert seen.calls == [("ended", "user_ended")]


async def test_hook_transcribed(make_engine, llm):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def transcribed(self, conversation, text):
            seen.calls.append(("transcribed", text))

    engine = make_engine(plugins=(Plugin(),))
    engine.stt = FakeSTT("hello from audio")
    conv = await _conversation(engine)
    events = await collect(engine.turn(conv.id, Inbound(audio=b"OggS...", audio_mime="audio/ogg")))
    assert seen.calls == [("transcribed", "hello from audio")]
    assert any(isinstance(e, Transcript) and e.text == "hello from audio" for e in events)
    assert llm.requests[0].messages[-1]["content"] == "hello from audio"
    assert engine.stt.calls == [(b"OggS...", "audio/ogg")]


async def test_hook_select_responders(make_engine):
    class Plugin:
        @hookimpl
        def select_responders(self, personas):
            return [personas[-1].id]

    engine = make_engine(plugins=(Plugin(),))
    conv = await _conversation(engine, "duo")
    events = await collect(engine.turn(conv.id, Inbound(text="@Maya hi")))
    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["leo"]


async def test_hook_before_llm(make_engine, llm):
    class Edit:
        @hookimpl
        def before_llm(self, messages):
            messages[0]["content"] += " Always rhyme."

    class Replace:
        @hookimpl
        async def before_llm(self, persona, messages):
            return [*messages, {"role": "system", "content": f"for {persona.id}"}]

    engine = make_engine(plugins=(Edit(), Replace()))
    conv = await _conversation(engine)
    await collect(engine.turn(conv.id, Inbound(text="hi")))
    sent = llm.requests[0].messages
    assert sent[0]["content"] == "You are Alex. Always rhyme."
    assert sent[-1] == {"role": "system", "content": "for alex"}


async def test_before_llm_styles_combine_in_either_order(make_engine, llm):
    """An in-place edit made after another plugin returned a list is kept, and the reverse."""

    class Append:
        @hookimpl
        def before_llm(self, messages):
            messages.append({"role": "system", "content": "appended in place"})

    class Replace:
        @hookimpl
        def before_llm(self, messages):
            return [*messages, {"role": "system", "content": "returned"}]

    for plugins, expected in (
        ((Append(), Replace()), ["returned", "appended in place"]),  # Replace runs first
        ((Replace(), Append()), ["appended in place", "returned"]),
    ):
        engine = make_engine(plugins=plugins)
        conv = await _conversation(engine)
        llm.requests.clear()
        await collect(engine.turn(conv.id, Inbound(text="hi")))
        assert [m["content"] for m in llm.requests[0].messages[-2:]] == expected


async def test_hook_transform_response(make_engine, llm):
    class Upper:
        @hookimpl
        def transform_response(self, text):
            return text.upper()

    class Exclaim:
        @hookimpl
        async def transform_response(self, text):
            return text + "!"

    engine = make_engine(plugins=(Upper(), Exclaim()))
    conv = await _conversation(engine)
    llm.push("quiet words")
    events = await collect(engine.turn(conv.id, Inbound(text="hi")))
    done = next(e for e in events if isinstance(e, MessageCompleted))
    # Exclaim was registered last, so it runs first (pluggy's order).
    assert done.text == "QUIET WORDS!"
    assert (await store.list_messages(conv.id))[-1].content == "QUIET WORDS!"


async def test_hook_turn_completed(make_engine, llm):
    seen = Recorder()

    class Plugin:
        @hookimpl
        async def turn_completed(self, conversation, messages):
            seen.calls.append((conversation.turn_count, [(m.role, m.content) for m in messages]))

    engine = make_engine(plugins=(Plugin(),))
    conv = await _conversation(engine)
    llm.push("sure")
    await collect(engine.turn(conv.id, Inbound(text="hi")))
    assert seen.calls == [(1, [("user", "hi"), ("assistant", "sure")])]


async def test_failing_hook_does_not_break_the_turn(make_engine, llm, caplog):
    class Broken:
        @hookimpl
        def before_llm(self, messages):
            raise RuntimeError("boom")

        @hookimpl
        async def turn_completed(self, conversation):
            raise ValueError("async boom")

    engine = make_engine(plugins=(Broken(),))
    conv = await _conversation(engine)
    llm.push("still here")
    events = await collect(engine.turn(conv.id, Inbound(text="hi")))
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert any(isinstance(e, MessageCompleted) and e.text == "still here" for e in events)
    failures = [r for r in caplog.records if "test-plugin-0" in r.getMessage()]
    assert {r.getMessage().split()[1] for r in failures} == {"before_llm", "turn_completed"}


async def test_hook_register_tools(make_engine, llm):
    async def shout(word: str, context) -> str:
        return f"{word.upper()} (for {context.persona.name})"

    class Plugin:
        @hookimpl
        def register_tools(self, register):
            register(
                Tool(
                    name="shout",
                    description="Shout a word",
                    parameters={"type": "object", "properties": {"word": {"type": "string"}}},
                    function=shout,
                )
            )

    engine = make_engine({"personas": {"alex": {"tools": ["shout"]}}}, plugins=(Plugin(),))
    assert {"shout", "current_time", "handoff"} <= set(engine.tools.names())
    conv = await _conversation(engine)
    llm.push(Step(tool_calls=[tool_call("shout", {"word": "hey"})]))
    llm.push("Done shouting")
    await collect(engine.turn(conv.id, Inbound(text="shout hey")))
    assert [t["function"]["name"] for t in llm.requests[0].tools] == ["shout"]
    assert llm.requests[1].messages[-1]["content"] == "HEY (for Alex)"
    stored = await store.list_messages(conv.id)
    assert [(m.role, m.content) for m in stored[-2:]] == [
        ("assistant", "Done shouting"),
        ("tool", "HEY (for Alex)"),
    ]


async def test_hook_route(make_engine, llm):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def route(self, conversation, inbound, template):
            seen.calls.append((inbound.text, [a.persona for a in template.agents]))
            return "leo" if "why" in inbound.text else None

    agents = [{"persona": "maya", "intents": ["lab"]}, {"persona": "leo", "intents": ["idea"]}]
    engine = make_engine(
        {"templates": {"desk": {"personas": ["maya", "leo"], "agents": agents}}},
        plugins=(Plugin(),),
    )
    conv = await _conversation(engine, "desk")
    events = await collect(engine.turn(conv.id, Inbound(text="why is the sky blue?")))
    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["leo"]
    assert seen.calls == [("why is the sky blue?", ["maya", "leo"])]
    state = (await store.get_conversation(conv.id)).state["agent"]
    assert (state["persona"], state["by"]) == ("leo", "route")


@dataclass
class GreeterSettings:
    """A plugin's settings: a ``Meta`` range, and a check across fields."""

    times: Annotated[int, Meta(ge=1, le=10)] = 1
    greeting: str = ""

    def __post_init__(self) -> None:
        if self.times > 1 and not self.greeting:
            raise InvalidSetting("greeting", "must be set when times is more than 1")


async def test_hook_register_settings(make_settings):
    class Plugin:
        @hookimpl
        def register_settings(self, register):
            register("greeter", GreeterSettings)

    runtime = _runtime(make_settings, Plugin(), extra={"greeter": {"times": 3, "greeting": "hi"}})
    runtime.collect()
    assert runtime.plugin_settings["greeter"] == GreeterSettings(times=3, greeting="hi")
    bad = _runtime(make_settings, Plugin(), extra={"greeter": {"times": 0}})
    with pytest.raises(
        SettingsError, match=r"^greeter\.times: Expected `int` >= 1, got 0 \(allowed: 1 to 10\)$"
    ):
        bad.collect()
    bad = _runtime(make_settings, Plugin(), extra={"greeter": {"times": 2}})
    with pytest.raises(SettingsError, match=r"^greeter\.greeting: must be set when times"):
        bad.collect()


def test_wrappers_and_async_register_hooks_are_refused_at_registration():
    import pluggy

    class NewStyle:
        @hookimpl(wrapper=True)
        def transform_response(self, text):
            return (yield)

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def before_llm(self, messages):
            yield

    class AsyncRegister:
        @hookimpl
        async def register_tools(self, register):
            pass

    for plugin, fragment in (
        (NewStyle(), "transform_response is a wrapper"),
        (OldStyle(), "before_llm is a wrapper"),
        (AsyncRegister(), "register_tools must be a plain function"),
    ):
        with pytest.raises(pluggy.PluginValidationError, match=fragment):
            make_plugin_manager((), entry_points=False, extra=[("bad", plugin)])
    pm = make_plugin_manager((), entry_points=False)
    with pytest.raises(pluggy.PluginValidationError):
        pm.register(NewStyle(), name="late")
    assert pm.get_plugin("late") is None  # not left half-registered


async def test_firstresult_waits_for_an_async_none(make_engine, llm):
    """A firstresult hook stops at the first non-None *awaited* result, in pluggy's order."""
    seen = Recorder()

    class Abstains:
        @hookimpl(tryfirst=True)
        async def select_responders(self):
            seen.calls.append("abstains")
            return None

    class Decides:
        @hookimpl
        def select_responders(self):
            seen.calls.append("decides")
            return ["leo"]

    class Never:
        @hookimpl(trylast=True)
        def select_responders(self):
            seen.calls.append("never")
            return ["maya"]

    engine = make_engine(plugins=(Decides(), Abstains(), Never()))
    conv = await _conversation(engine, "duo")
    events = await collect(engine.turn(conv.id, Inbound(text="hi")))
    assert [e.character_id for e in events if isinstance(e, MessageStarted)] == ["leo"]
    assert seen.calls == ["abstains", "decides"]


def test_hook_register_commands():
    import click
    from click.testing import CliRunner

    from parley.plugin_commands import PluginGroup

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def hello(name):
                """Say hello."""
                click.echo(f"hello {name}")

            @cli.command(name="builtin")
            def clash():
                click.echo("the plugin's")

    group = PluginGroup(name="parley")

    @group.command()
    def builtin():
        click.echo("the built-in")

    group.plugin_manager = lambda: make_plugin_manager(
        (), entry_points=False, extra=[("p", Plugin())]
    )
    runner = CliRunner()
    assert runner.invoke(group, ["hello", "you"]).output == "hello you\n"
    assert runner.invoke(group, ["builtin"]).output == "the built-in\n"
    assert "hello" in runner.invoke(group, ["--help"]).output

    def broken():
        raise ImportError("a plugin that cannot be imported")

    broken_group = PluginGroup(name="parley", commands={"builtin": builtin})
    broken_group.plugin_manager = broken
    assert runner.invoke(broken_group, ["builtin"]).output == "the built-in\n"
    assert runner.invoke(broken_group, ["hello"]).exit_code == 2  # no such command, no crash


def test_register_commands_refuses_a_later_duplicate(caplog):
    """Two plugins adding one command name: the first in hook order (the last registered) keeps
    it, the other's is refused with a warning naming both plugins (docs/hooks.md)."""
    import click
    from click.testing import CliRunner

    from parley.plugin_commands import PluginGroup

    def plugin(says):
        class Plugin:
            @hookimpl
            def register_commands(self, cli):
                @cli.command()
                def hello():
                    click.echo(says)

        return Plugin()

    group = PluginGroup(name="parley")
    group.plugin_manager = lambda: make_plugin_manager(
        (), entry_points=False, extra=[("alpha", plugin("alpha's")), ("beta", plugin("beta's"))]
    )
    assert CliRunner().invoke(group, ["hello"]).output == "beta's\n"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == [
        "command 'hello' of plugin 'alpha' is refused: the name is taken by plugin 'beta'"
    ]
