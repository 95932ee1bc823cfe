"""The answering part of a turn: who replies, each reply streamed (and spoken), hand-offs.

:meth:`Engine.turn <parley.core.engine.Engine.turn>` calls :func:`answer` once the user's
message is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Protocol

from parley.core import store
from parley.core.config import ModelSettings, Persona, Settings, Template
from parley.core.context import build_messages
from parley.core.events import Event
from parley.core.inbound import Inbound
from parley.core.plugins import Hooks
from parley.core.providers import LLMProvider, TTSProvider
from parley.core.reply import ReplyResult, ReplyTools, stream_reply
from parley.core.responders import choose_responders, handed_off
from parley.core.speech import SpeechOptions, speak
from parley.core.store.records import ConversationRecord, MessageRecord
from parley.core.tools import ToolRegistry

__all__ = [
    "MAX_HANDOFFS_PER_TURN",
    "Answerer",
    "answer",
    "history_window",
    "model_settings",
    "reply_tools",
]

MAX_HANDOFFS_PER_TURN = 2
"""A hand-off lets the new agent answer in the same turn, at most this many times."""


class Answerer(Protocol):
    """What answering needs of the engine (:class:`~parley.core.engine.Engine` is one)."""

    settings: Settings
    hooks: Hooks
    llm: LLMProvider
    tts: TTSProvider | None
    tools: ToolRegistry


async def answer(
    engine: Answerer,
    conversation: ConversationRecord,
    template: Template,
    inbound: Inbound,
    started_at: float,
    turn_messages: list[MessageRecord],
    speech: SpeechOptions | None = None,
    timing: dict[str, int] | None = None,
    read: store.ReadWindow | None = None,
) -> AsyncIterator[Event]:
    """The replies of a turn: each responder's streamed reply (spoken with ``speech``), hand-offs
    included; every stored message is appended to ``turn_messages``. ``read``: the window as
    read with the user's message, for the first reply while no message of the conversation was
    written since (routing hooks may write some); otherwise, and for later replies, it is read
    anew."""
    responders, conversation = await choose_responders(
        engine.settings, engine.hooks, conversation, template, inbound
    )
    window = history_window(engine.settings, template)
    history = read.current() if read is not None else None
    multi_character = len(template.personas) > 1
    handoffs = 0
    while responders:
        persona = responders.pop(0)
        if history is None:
            history = await store.recent_messages(conversation.id, window)
        messages = build_messages(
            persona,
            conversation.language,
            history,
            multi_character=multi_character,
        )
        messages = await engine.hooks.chain(
            "before_llm", "messages", messages, conversation=conversation, persona=persona
        )
        result = ReplyResult(metadata=dict(timing or {}))
        reply = stream_reply(
            conversation=conversation,
            persona=persona,
            messages=messages,
            model=model_settings(engine.settings, conversation, template, persona),
            llm=engine.llm,
            hooks=engine.hooks,
            result=result,
            started_at=started_at,
            tools=reply_tools(engine.settings, engine.tools, persona),
        )
        spoken = speech is not None and engine.tts is not None
        if spoken:
            reply = speak(
                reply,
                tts=engine.tts,
                voice=persona.voice,
                options=speech,
                started_at=started_at,
            )
        history = None
        async with aclosing(reply) as events:
            async for event in events:
                yield event
        if result.message_id:
            # Speech adds its timings after the reply was stored: read those back.
            stored = None if spoken else result.stored
            stored = stored or await store.get_message(result.message_id)
            if stored is not None:
                turn_messages.append(stored)
        turn_messages.extend(result.tool_messages)
        if result.status == "failed":
            return
        successor = await handed_off(engine.settings, conversation, template, persona)
        if successor is not None and handoffs < MAX_HANDOFFS_PER_TURN:
            handoffs += 1
            responders = [successor]


def history_window(settings: Settings, template: Template) -> int:
    """How many of a conversation's last messages a reply's prompt holds (the user's at least)."""
    window = template.history_window
    if window is None:
        window = settings.conversation.history_window
    return max(window, 1)


def reply_tools(settings: Settings, tools: ToolRegistry, persona: Persona) -> ReplyTools | None:
    """The tools ``persona`` may call in a reply, or None."""
    offered = tools.for_persona(persona)
    if not offered:
        return None
    return ReplyTools(
        tools=offered,
        settings=settings,
        max_steps=settings.llm.max_tool_steps,
        timeout=settings.tools.timeout,
    )


def model_settings(
    settings: Settings, conversation: ConversationRecord, template: Template, persona: Persona
) -> ModelSettings:
    """llm defaults < persona < template < the conversation's own overrides (``model_settings``)."""
    overrides = conversation.state.get("model_settings") or {}
    return settings.llm.defaults().merged(persona.model, template.model, ModelSettings(**overrides))
