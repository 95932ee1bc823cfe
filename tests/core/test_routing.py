"""Intent routing: keywords, LLM classification, the agent lock, its expiry, and hand-off."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from parley import hookimpl
from parley.core import store
from parley.core.events import MessageCompleted, MessageStarted
from parley.core.inbound import Inbound
from parley.core.loading import load_settings
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.testing import ScriptedLLM, Step, collect, tool_call

ROOT = Path(__file__).resolve().parents[2]
DESK = {
    "personas": {"maya": {"tools": ["handoff"]}, "leo": {"tools": ["handoff"]}},
    "templates": {
        "desk": {
            "personas": ["maya", "leo"],
            "agents": [
                {"persona": "maya", "intents": ["lab", "experiment"], "description": "science"},
                {"persona": "leo", "intents": ["meaning of", "philosophy"]},
            ],
        }
    },
}


async def _open(engine, external_id="router"):
    user = await store.get_or_create_user("test", external_id)
    return (await engine.open(user.id, "test", template_id="desk")).conversation


def _speakers(events):
    return [e.character_id for e in events if isinstance(e, MessageStarted)]


async def _agent(conversation_id):
    return (await store.get_conversation(conversation_id)).state["agent"]


async def test_keyword_routing_and_the_lock(make_engine):
    engine = make_engine(DESK)
    conv = await _open(engine)
    assert _speakers(await collect(engine.turn(conv.id, Inbound(text="A quiet hello")))) == ["maya"]
    assert (await _agent(conv.id))["by"] == "default"  # nothing matched: the first agent
    # Locked: a message for the other agent still goes to the locked one.
    events = await collect(engine.turn(conv.id, Inbound(text="What is the MEANING of life?")))
    assert _speakers(events) == ["maya"]

    other = await _open(engine, "fresh")  # a new conversation starts unlocked
    events = await collect(engine.turn(other.id, Inbound(text="Some philosophy, please")))
    assert _speakers(events) == ["leo"]
    agent = await _agent(other.id)
    assert (agent["persona"], agent["by"]) == ("leo", "route")
    assert datetime.fromisoformat(agent["since"]) <= datetime.now(UTC)


async def test_lock_expires_after_lock_ttl(make_engine):
    engine = make_engine({**DESK, "routing": {"lock_ttl": 600}})
    conv = await _open(engine)
    await collect(engine.turn(conv.id, Inbound(text="Tell me about the lab")))
    assert (await _agent(conv.id))["persona"] == "maya"
    events = await collect(engine.turn(conv.id, Inbound(text="philosophy now")))
    assert _speakers(events) == ["maya"]  # still locked

    state = (await store.get_conversation(conv.id)).state
    old = (datetime.now(UTC) - timedelta(seconds=601)).isoformat()
    await store.update_conversation(
        conv.id, state={**state, "agent": {**state["agent"], "since": old}}
    )
    events = await collect(engine.turn(conv.id, Inbound(text="philosophy now")))
    assert _speakers(events) == ["leo"]
    # An expired lock with no matching intent keeps the agent the user was talking to.
    state = (await store.get_conversation(conv.id)).state
    await store.update_conversation(
        conv.id, state={**state, "agent": {**state["agent"], "since": old}}
    )
    events = await collect(engine.turn(conv.id, Inbound(text="ok, go on")))
    assert _speakers(events) == ["leo"]


async def test_handoff_tool_passes_the_user_on_in_the_same_turn(make_engine, llm):
    engine = make_engine(DESK)
    conv = await _open(engine)
    llm.push(Step(["Leo knows this."], tool_calls=[tool_call("handoff", {"to": "Leo"})]))
    llm.push("Over to him.")
    llm.push("Leo here: let us think.")
    events = await collect(engine.turn(conv.id, Inbound(text="lab question about meaning")))

    assert _speakers(events) == ["maya", "leo"]
    texts = [e.text for e in events if isinstance(e, MessageCompleted)]
    assert texts == ["Leo knows this. Over to him.", "Leo here: let us think."]
    result = json.loads(llm.requests[1].messages[-1]["content"])
    assert result["handed_off_to"] == "leo"
    agent = await _agent(conv.id)
    assert (agent["persona"], agent["by"], agent["from"]) == ("leo", "handoff", "maya")
    # Leo sees Maya's words, labelled, and his tools.
    assert llm.requests[2].messages[-1] == {
        "role": "user",
        "content": "[Maya]: Leo knows this. Over to him.",
    }
    # The lock now holds Leo, even for a message about the lab.
    events = await collect(engine.turn(conv.id, Inbound(text="back to the lab")))
    assert _speakers(events) == ["leo"]


async def test_handoff_to_an_unknown_agent_is_an_error_result(make_engine, llm):
    engine = make_engine(DESK)
    conv = await _open(engine)
    llm.push(Step(tool_calls=[tool_call("handoff", {"to": "nobody"})]))
    llm.push("Let me help myself then.")
    events = await collect(engine.turn(conv.id, Inbound(text="lab")))
    assert _speakers(events) == ["maya"]
    error = json.loads(llm.requests[1].messages[-1]["content"])["error"]
    assert error == "ValueError: unknown agent 'nobody'; choose one of: leo"
    assert (await _agent(conv.id))["persona"] == "maya"


async def test_routing_by_llm(make_settings):
    scripted = ScriptedLLM()

    class Provider:
        @hookimpl
        def register_llm_providers(self, register):
            register("scripted", lambda settings: scripted)

    settings = make_settings(
        {**DESK, "llm": {"provider": "scripted"}, "routing": {"mode": "llm", "model": "router-1"}}
    )
    runtime = Runtime(
        settings, make_plugin_manager((), entry_points=False, extra=[("p", Provider())])
    )
    await runtime.start(adapters=False)
    try:
        engine = runtime.engine
        conv = await _open(engine)
        scripted.push("leo")  # the classification
        scripted.push("Leo speaking.")
        events = await collect(engine.turn(conv.id, Inbound(text="Why do we exist?")))
        assert _speakers(events) == ["leo"]
        classify = scripted.requests[0]
        assert classify.model.model == "router-1" and classify.model.temperature == 0
        assert "- maya: science" in classify.messages[0]["content"]
        assert "- leo: meaning of, philosophy" in classify.messages[0]["content"]
        assert classify.messages[-1] == {"role": "user", "content": "Why do we exist?"}
        assert classify.tools == []

        other = await _open(engine, "second")
        scripted.push("I am not sure.")  # names no agent: keywords decide
        scripted.push("Maya speaking.")
        events = await collect(engine.turn(other.id, Inbound(text="An experiment!")))
        assert _speakers(events) == ["maya"]
        assert (await _agent(other.id))["by"] == "route"
    finally:
        await runtime.stop()


def test_shipped_medical_intake_template():
    settings = load_settings(ROOT / "settings")
    template = settings.template("medical-intake")
    assert [a.persona for a in template.agents] == template.personas[:2]
    intake, scheduling = (settings.personas[a.persona] for a in template.agents)
    assert intake.name == "Anna" and "handoff" in intake.tools
    assert "consent" in intake.prompt_for("en").lower()
    assert "handoff" in scheduling.tools and "current_time" in scheduling.tools


async def test_fixed_prompts_come_from_the_agent_the_user_talks_to(make_engine):
    agents = [{"persona": "leo", "intents": ["why"]}, {"persona": "maya", "intents": ["lab"]}]
    engine = make_engine({"templates": {"desk": {"personas": ["maya", "leo"], "agents": agents}}})
    opened = await _open_with_greeting(engine)
    assert opened.greeting.character_id == "leo"  # the first agent greets
    await collect(engine.turn(opened.conversation.id, Inbound(text="the lab")))
    events = await collect(engine.turn(opened.conversation.id, Inbound(text="goodbye")))
    farewell = next(e for e in events if isinstance(e, MessageCompleted))
    assert (farewell.character_id, farewell.text) == ("maya", "Take care!")


async def _open_with_greeting(engine):
    user = await store.get_or_create_user("test", "greeted")
    return await engine.open(user.id, "test", template_id="desk")
