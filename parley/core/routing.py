"""Intent routing: which agent of a template answers a turn, the agent lock, and hand-off.

A template with ``agents`` has one agent answer each turn. The chosen agent is locked to the
conversation in its state (``state["agent"]``, with the time) until ``routing.lock_ttl`` passes,
the conversation ends (a new conversation starts unlocked) or the agent calls the ``handoff``
tool. While no lock holds, the ``route`` hook picks the agent; when it has no answer the previous
agent stays, or the template's first agent answers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from parley.core import store
from parley.core.tools import Tool, ToolContext

if TYPE_CHECKING:
    from parley.core.config import Template
    from parley.core.inbound import Inbound
    from parley.core.store.records import ConversationRecord

__all__ = ["HANDOFF", "STATE_KEY", "active_agent", "choose_agent", "hand_off", "lock_agent"]

log = logging.getLogger(__name__)


class Hooks(Protocol):
    """What routing needs of :class:`parley.core.plugins.Hooks` (a protocol: no import cycle)."""

    async def first(self, name: str, **kwargs: Any) -> Any:
        """The first non-None result of the ``name`` hook."""


STATE_KEY = "agent"
"""``conversation.state[STATE_KEY]``: ``{persona, since, by, from?, reason?}``."""


def _now() -> datetime:
    return datetime.now(UTC)


def active_agent(
    conversation: ConversationRecord, lock_ttl: float, now: datetime | None = None
) -> dict[str, Any] | None:
    """The locked agent's state entry while its lock holds, else None."""
    entry = conversation.state.get(STATE_KEY)
    if not isinstance(entry, dict) or not entry.get("persona"):
        return None
    if lock_ttl:
        try:
            since = datetime.fromisoformat(entry["since"])
        except (KeyError, TypeError, ValueError):
            return None
        if since + timedelta(seconds=lock_ttl) <= (now or _now()):
            return None
    return entry


async def lock_agent(
    conversation_id: str, persona_id: str, *, by: str, **details: Any
) -> ConversationRecord:
    """Lock ``persona_id`` to the conversation from now; ``by`` says who decided."""
    entry = {"persona": persona_id, "since": _now().isoformat(), "by": by}
    entry.update({k: v for k, v in details.items() if v})
    # Atomic: model settings stored meanwhile (a socket's model_settings frame) stay.
    return await store.update_state(conversation_id, lambda state: state.update({STATE_KEY: entry}))


async def choose_agent(
    conversation: ConversationRecord,
    template: Template,
    inbound: Inbound,
    *,
    hooks: Hooks,
    lock_ttl: float,
) -> tuple[str, ConversationRecord]:
    """The persona id that answers this turn (locking it when newly chosen)."""
    ids = [agent.persona for agent in template.agents]
    locked = active_agent(conversation, lock_ttl)
    if locked is not None and locked["persona"] in ids:
        return locked["persona"], conversation
    chosen = await hooks.first(
        "route", conversation=conversation, inbound=inbound, template=template
    )
    by = "route"
    if chosen not in ids:
        if chosen is not None:
            log.warning("route returned %r, not an agent of %s", chosen, template.id)
        previous = conversation.state.get(STATE_KEY) or {}
        chosen = previous.get("persona") if previous.get("persona") in ids else ids[0]
        by = "default"
    return chosen, await lock_agent(conversation.id, chosen, by=by)


async def hand_off(context: ToolContext, to: str, reason: str = "") -> dict[str, str]:
    """The ``handoff`` tool: lock another agent of the template; it answers next."""
    conversation = context.conversation
    template = context.settings.template(conversation.template_id)
    agents = {a.persona: context.settings.personas[a.persona] for a in template.agents}
    others = [pid for pid in agents if pid != context.persona.id]
    if not others:
        raise ValueError("this conversation has no other agent to hand off to")
    wanted = to.strip().casefold()
    target = next(
        (pid for pid in others if wanted in (pid.casefold(), agents[pid].name.casefold())), None
    )
    if target is None:
        raise ValueError(f"unknown agent {to!r}; choose one of: {', '.join(others)}")
    await lock_agent(
        conversation.id, target, by="handoff", **{"from": context.persona.id, "reason": reason}
    )
    name = agents[target].name
    return {
        "handed_off_to": target,
        "name": name,
        "note": f"{name} takes over and answers the user right after you. Say goodbye briefly.",
    }


HANDOFF = Tool(
    name="handoff",
    description=(
        "Hand the user over to another agent of this service when their request belongs there "
        "(or when your part is done). `to` is the other agent's id or name. The other agent "
        "answers right after your reply."
    ),
    parameters={
        "type": "object",
        "properties": {
            "to": {"type": "string", "description": "Id or name of the agent to hand over to."},
            "reason": {
                "type": "string",
                "description": "Why, and what the next agent should know.",
            },
        },
        "required": ["to"],
    },
    function=hand_off,
)
"""The built-in ``handoff`` tool (registered by the ``router`` plugin)."""
