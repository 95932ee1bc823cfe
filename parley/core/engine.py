"""The conversation engine: open, turn, end. Adapters call it and render the events it yields.

Always consume :meth:`Engine.turn` completely or close it (``contextlib.aclosing``): the turn holds
the conversation's lock until it finishes, and an abandoned reply is stored as ``interrupted``.
Every event :meth:`Engine.turn` and :meth:`Engine.say` yield is also published on the engine's
event bus (:mod:`parley.core.bus`), so every subscriber of the conversation sees it, in this
process or another; the conversation runtime (:mod:`parley.core.conversation`) builds on that.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime

from parley.core import opening, saying, store, turning
from parley.core.answering import model_settings
from parley.core.bus import EventBus
from parley.core.config import ModelSettings, Persona, Settings, Template
from parley.core.context import user_content
from parley.core.engine_types import EngineError, Opened
from parley.core.events import ConversationEnded, Event
from parley.core.inbound import Inbound
from parley.core.inbox import Inbox
from parley.core.inbox_turns import keyed_turn
from parley.core.locks import LocalLocks, Locks
from parley.core.plugins import Hooks
from parley.core.providers import LLMProvider, STTProvider, TTSProvider
from parley.core.responders import speaker
from parley.core.saying import message_events
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord, MessageRecord
from parley.core.telemetry import Telemetry
from parley.core.tools import ToolRegistry

__all__ = ["Engine", "EngineError", "Opened", "message_events"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Runs conversations: resolves users, stores every message, streams replies as events."""

    def __init__(
        self,
        settings: Settings,
        hooks: Hooks,
        llm: LLMProvider,
        *,
        stt: STTProvider | None = None,
        tts: TTSProvider | None = None,
        locks: Locks | None = None,
        tools: ToolRegistry | None = None,
        telemetry: Telemetry | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.bus = bus if bus is not None else EventBus()
        """Where every event of a turn or a prompt is published (its subscribers render it)."""
        self.hooks = hooks
        self.llm = llm
        self.stt = stt
        self.tts = tts
        self.locks: Locks = locks if locks is not None else LocalLocks()
        if tools is None:
            tools = ToolRegistry()
            hooks.call_sync("register_tools", register=tools.register)
        self.tools = tools
        self.inbox: Inbox | None = None
        """The durable inbox (set by the runtime): keyed turns run through it."""

    # -- conversations ---------------------------------------------------------------------

    def template(self, template_id: str | None) -> Template:
        """The template (default when None); EngineError ``unknown_template`` otherwise."""
        tid = template_id or self.settings.conversation.default_template
        try:
            return self.settings.template(tid)
        except KeyError:
            raise EngineError("unknown_template", f"unknown template {tid!r}") from None

    def personas(self, template: Template) -> list[Persona]:
        """The template's personas, in order."""
        return [self.settings.personas[pid] for pid in template.personas]

    def _expires_at(self) -> datetime:
        return opening.new_expiry(self.settings)

    async def open(
        self,
        user_id: str,
        channel: str,
        *,
        template_id: str | None = None,
        language: str | None = None,
        greet: bool = True,
    ) -> Opened:
        """Start a new conversation for ``user_id`` and store its greeting: the template's, else
        the language's ``prompts.start`` (none with ``greet=False``: a channel that turned
        greetings off)."""
        return await opening.open_conversation(self, user_id, channel, template_id, language, greet)

    async def resume_or_open(
        self,
        user_id: str | None,
        channel: str,
        *,
        identity: str | None = None,
        template_id: str | None = None,
        language: str | None = None,
        greet: bool = True,
    ) -> Opened:
        """The user's open conversation on ``channel``, or a new one (greeted unless ``greet`` is
        false).

        An open conversation idle past ``conversation.session_ttl`` is ended (``expired``) first.
        Concurrent calls for one user and channel (several tabs, simultaneous requests) get the
        same conversation: they are serialised by a lock on (user, channel).

        ``identity`` instead of a ``user_id`` (None): the caller's external id on ``channel``,
        which names the user (``Opened.conversation.user_id``). A user seen for the first time
        is stored with the identity and the new conversation in one transaction, under a lock
        on the identity (nobody knows the new user yet); a second tab that lost that race gets
        the first one's conversation, resumed as above.
        """
        return await opening.resume_or_open(
            self, user_id, channel, identity, template_id, language, greet
        )

    def is_expired(self, conversation: ConversationRecord) -> bool:
        """True when the conversation has been idle longer than the session TTL."""
        return conversation.expires_at is not None and conversation.expires_at <= _now()

    async def end(
        self,
        conversation_id: str,
        reason: str,
        *,
        farewell: bool = True,
        announce: bool = True,
        origin: str | None = None,
    ) -> ConversationRecord:
        """End the conversation with ``reason``; store the end prompt when ``farewell``.

        With ``announce`` ``ConversationEnded`` is published on the bus (tagged ``origin``), so
        every live subscriber learns it; callers that yield the event themselves pass False."""
        conversation = await store.get_conversation(conversation_id)
        if conversation is None:
            raise EngineError("not_found", "conversation not found")
        if not conversation.is_open:
            return conversation
        if farewell:
            await self._farewell(conversation)
        ended, now = await store.end_open_conversation(conversation_id, reason)
        if not now:  # another caller ended it meanwhile: it announces the end
            return ended
        await self.hooks.call("conversation_ended", conversation=ended, reason=reason)
        if announce:
            await self.bus.publish(
                conversation_id, ConversationEnded(conversation_id, reason), origin
            )
        return ended

    async def _farewell(self, conversation: ConversationRecord) -> MessageRecord | None:
        end_prompt = self.settings.language(conversation.language).prompts.end
        if not end_prompt:
            return None
        persona = speaker(self.settings, conversation, self.template(conversation.template_id))
        return await self._say(conversation, persona, end_prompt)

    async def _say(
        self, conversation: ConversationRecord, persona: Persona, text: str
    ) -> MessageRecord:
        return await opening.store_prompt(conversation, persona, text)

    def say(
        self,
        conversation_id: str,
        text: str | None,
        *,
        speech: SpeechOptions | None = None,
        end_reason: str | None = None,
        origin: str | None = None,
        once_since: datetime | None = None,
    ) -> AsyncIterator[Event]:
        """Say ``text`` outside a turn (a nudge, the timeout prompt): stored as the speaker's
        message and yielded like a reply, spoken with ``speech``; then, with ``end_reason``, the
        conversation ends (ConversationEnded). Nothing when the conversation is not open, or
        (``once_since``) when another process said the same since then.
        Each event is published on the bus too, with ``origin`` (see :meth:`turn`)."""
        events = saying.say(
            self,
            conversation_id,
            text,
            speech=speech,
            end_reason=end_reason,
            once_since=once_since,
        )
        return self._published(conversation_id, events, origin)

    def replay(
        self, message: MessageRecord, *, speech: SpeechOptions | None = None
    ) -> AsyncIterator[Event]:
        """A stored message (a greeting) as a reply's events, spoken with ``speech``."""
        return saying.replay(self, message, speech=speech)

    # -- turns -----------------------------------------------------------------------------

    async def turn(
        self,
        conversation_id: str,
        inbound: Inbound,
        *,
        speech: SpeechOptions | None = None,
        origin: str | None = None,
    ) -> AsyncIterator[Event]:
        """Run one user turn and yield its events. Turns of one conversation run in arrival order.

        Each event is also published on :attr:`bus` before it is yielded, tagged with ``origin``
        (who asked for the turn: a subscriber knows its own turns by it).

        With ``speech`` (and a TTS provider) each reply is also spoken: Sentence, AudioChunk and
        AudioCompleted events follow its text as it streams (see :mod:`parley.core.speech`).
        Audio is transcribed first: an STT failure yields ``ErrorEvent("stt_failed")``, silence
        ``stt_empty``; its stored message is then marked ``failed`` and no turn runs (no LLM call).
        With ``inbound.idempotency_key`` the turn runs once per key (see
        :mod:`parley.core.inbox_turns`): a repeat gets the first turn's answer.
        """
        if inbound.idempotency_key is not None and self.inbox is not None:

            def run(conversation_id: str, inbound: Inbound) -> AsyncIterator[Event]:
                return self.run_turn(conversation_id, inbound, speech, origin=origin)

            events = keyed_turn(self.inbox, run, self.locks, conversation_id, inbound)
        else:
            events = self.run_turn(conversation_id, inbound, speech, origin=origin)
        async with aclosing(events) as stream:
            async for event in stream:
                yield event

    async def run_turn(
        self,
        conversation_id: str,
        inbound: Inbound,
        speech: SpeechOptions | None = None,
        *,
        origin: str | None = None,
    ) -> AsyncIterator[Event]:
        """One turn under the conversation's lock, ignoring ``idempotency_key`` (the inbox runs
        keyed turns through it); its events are published on the bus with ``origin``."""
        turn = turning.turn(self, conversation_id, inbound, speech)
        async with (
            self.telemetry.turn(conversation_id, inbound) as scope,  # span, timings, log line
            self.hold(conversation_id),
            aclosing(self._published(conversation_id, turn, origin)) as events,
        ):
            async for event in events:
                scope.observe(event)
                yield event

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        """The conversation's lock, which its turns, prompts and interrupts run under. Before it
        is released, what was published under it goes to the other processes (the bus's
        :meth:`~parley.core.bus.EventBus.flush`, bounded): another process's next turn does not
        overtake it on Redis. Adapters that publish under the lock take this, not ``locks``."""
        async with self.locks.hold(conversation_id):
            try:
                yield
            finally:
                await self.bus.flush()

    async def _published(
        self, conversation_id: str, events: AsyncIterator[Event], origin: str | None
    ) -> AsyncIterator[Event]:
        """``events``, each published on the bus before it is yielded."""
        async with aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                await self.bus.publish(conversation_id, event, origin)
                yield event

    def model_settings(
        self, conversation: ConversationRecord, template: Template, persona: Persona
    ) -> ModelSettings:
        """llm defaults < persona < template < the conversation's own overrides (``model_settings``)."""
        return model_settings(self.settings, conversation, template, persona)


__all__ += ["user_content"]
