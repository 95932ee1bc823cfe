"""Who answers a turn: the routed agent of a template with ``agents``, or its personas.

A single-persona template: that persona. A multi-character one: ``select_responders`` (the
built-in ``mentions`` plugin). A template with ``agents``: the agent chosen by
:func:`parley.core.routing.choose_agent`, and after a hand-off the agent it handed over to.
"""

from __future__ import annotations

from parley.core import routing, store
from parley.core.config import Persona, Settings, Template
from parley.core.inbound import Inbound
from parley.core.plugins import Hooks
from parley.core.store.records import ConversationRecord

__all__ = ["choose_responders", "handed_off", "speaker"]


async def choose_responders(
    settings: Settings,
    hooks: Hooks,
    conversation: ConversationRecord,
    template: Template,
    inbound: Inbound,
) -> tuple[list[Persona], ConversationRecord]:
    """The personas that answer, in order, and the conversation (its state may have changed)."""
    personas = [settings.personas[pid] for pid in template.personas]
    if template.agents:
        agent, conversation = await routing.choose_agent(
            conversation, template, inbound, hooks=hooks, lock_ttl=settings.routing.lock_ttl
        )
        return [settings.personas[agent]], conversation
    if len(personas) == 1:
        return personas, conversation
    chosen = await hooks.first(
        "select_responders",
        conversation=conversation,
        template=template,
        text=inbound.text,
        personas=personas,
    )
    if chosen:
        by_id = {p.id: p for p in personas}
        return [by_id[pid] for pid in chosen if pid in by_id] or personas, conversation
    return personas, conversation


async def handed_off(
    settings: Settings, conversation: ConversationRecord, template: Template, persona: Persona
) -> Persona | None:
    """The agent ``persona`` handed the conversation to during its reply, if any."""
    if not template.agents:
        return None
    fresh = await store.get_conversation(conversation.id)
    entry = (fresh.state if fresh else {}).get(routing.STATE_KEY) or {}
    target = entry.get("persona")
    if entry.get("by") == "handoff" and target != persona.id and target in template.personas:
        return settings.personas[target]
    return None


def speaker(settings: Settings, conversation: ConversationRecord, template: Template) -> Persona:
    """Who says fixed prompts (greeting, end prompt): the agent the user talks to (the first
    agent before any routing), else the template's first persona."""
    if template.agents:
        agent = (conversation.state.get(routing.STATE_KEY) or {}).get("persona")
        ids = [a.persona for a in template.agents]
        return settings.personas[agent if agent in ids else ids[0]]
    return settings.personas[template.personas[0]]
