"""The socket's conversation: text-chat frames, the jobs they queue, and which conversation is current.

:class:`ChatFrames` is the part of :class:`~parley.adapters.web.ws.WebSession` that speaks the
web issue's protocol: ``user_message``, ``new_conversation``, ``resume``, ``model_settings``,
``refresh_characters``, and the ``conversation_started`` announcement with its greeting. The
socket is attached to the live conversation (:mod:`parley.core.conversation`) of its current
conversation: turns, ends and model settings are commands to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from parley.adapters.web.access import check_text, owned_conversation
from parley.adapters.web.admin import reload_from_socket
from parley.adapters.web.client_frames import (
    ClientFrame,
    NewConversation,
    RefreshCharacters,
    Resume,
    UserMessage,
    merge_model_settings,
)
from parley.adapters.web.frames import FrameError
from parley.adapters.web.history import readable_messages
from parley.adapters.web.identity import CHANNEL, Caller
from parley.adapters.web.shapes import characters, message_json
from parley.core import store
from parley.core.bus import Envelope
from parley.core.conversation import Attachment, LiveConversation
from parley.core.conversation_commands import End, ModelSettings, UserTurn
from parley.core.engine import Engine, Opened
from parley.core.events import Event
from parley.core.inbound import Inbound
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord

if TYPE_CHECKING:
    from litestar import WebSocket

    from parley.adapters.web.adapter import WebAdapter
    from parley.adapters.web.outbox import Outbox

__all__ = ["HISTORY_LIMIT", "MAX_QUEUED", "ChatFrames", "Job"]

Job = Callable[[], Awaitable[None]]

MAX_QUEUED = 32
"""User messages waiting behind the current reply; more get a ``queue_full`` error frame."""

HISTORY_LIMIT = 500
"""Messages per ``history`` frame (``has_more`` tells when a client should page over HTTP)."""


class ChatFrames:
    """Conversation frames and jobs of a socket (mixed into ``WebSession``)."""

    web: WebAdapter
    socket: WebSocket[Any, Any, Any]
    id: str
    outbox: Outbox
    caller: Caller | None
    conversation: ConversationRecord | None
    conversation_open: bool
    model_overrides: dict[str, Any]
    jobs: asyncio.Queue[Job]
    live: LiveConversation | None
    """The live conversation the socket is attached to (its current conversation)."""
    attachment: Attachment | None

    @property
    def engine(self) -> Engine:
        """The runtime's engine."""
        return self.web.engine

    @property
    def greet(self) -> bool:
        """Whether new conversations open with a greeting (``web.greeting``)."""
        return self.web.settings.greeting

    @property
    def user_id(self) -> str:
        """The identified caller's user id."""
        return self.caller.user_id if self.caller else ""

    if TYPE_CHECKING:  # provided by WebSession

        def speech(self) -> SpeechOptions | None: ...

        async def barge_in(self) -> None: ...

        def touch(self) -> None: ...

        async def deliver(self, envelope: Envelope) -> None: ...

        async def stream(self, events: AsyncIterator[Event], conversation_id: str) -> None: ...

    # -- frames ----------------------------------------------------------------------------------

    async def queue_message(
        self, text: str, metadata: dict[str, Any] | None = None, client_id: str | None = None
    ) -> None:
        """Queue a turn for ``text``: answered after the replies before it, or, when barge-in
        applies, right after the reply in flight is cut short. FrameError when over the rate
        limit or when the queue is full."""
        client = self.socket.client
        caller = self.caller.external_id if self.caller else ""
        if not await self.web.limiter.allow(caller, client.host if client else None):
            raise FrameError("rate_limited", "too many messages; wait a moment")
        if self.jobs.qsize() >= MAX_QUEUED:
            raise FrameError("queue_full", "too many messages waiting for an answer")
        self.touch()
        await self.barge_in()
        self.jobs.put_nowait(partial(self.turn, text, metadata, client_id))

    async def on_user_message(self, frame: UserMessage) -> None:
        """Queue a turn (``client_id``, optional: the message's idempotency key)."""
        text = check_text(frame.text, self.web.settings, name="data.text")
        await self.queue_message(text, client_id=frame.client_id)

    async def on_new_conversation(self, frame: NewConversation) -> None:
        """Queue the start of a new conversation (the open one ends, reason new_conversation)."""
        template_id = frame.template_id
        self.engine.template(template_id)  # unknown_template now, not after the queue
        self.jobs.put_nowait(partial(self.new_conversation, template_id, frame.language))

    async def on_resume(self, frame: Resume) -> None:
        """Send the history at once; switch to the conversation in order with queued messages."""
        assert self.caller is not None
        conversation = await owned_conversation(self.caller, frame.conversation_id)
        after = frame.after_message_id
        messages, has_more = await readable_messages(conversation, after=after, limit=HISTORY_LIMIT)
        await self.outbox.send(
            {
                "type": "history",
                "conversation_id": conversation.id,
                "messages": [message_json(m) for m in messages],
                "has_more": has_more,
                "status": conversation.status,
                "template_id": conversation.template_id,
                "characters": characters(self.engine, conversation.template_id),
            }
        )
        self.jobs.put_nowait(partial(self.switch_to, conversation.id))

    async def on_model_settings(self, frame: ClientFrame) -> None:
        """Store sampling overrides on the conversation (used from the next reply); ``frame`` is
        a ``ModelSettingsFrame``."""
        self.model_overrides = merge_model_settings(self.model_overrides, frame)
        if self.conversation is not None:
            await self.store_overrides(self.conversation.id)
        await self.outbox.send(
            {"type": "model_settings_updated", "model_settings": self.model_overrides}
        )

    async def on_refresh_characters(self, frame: RefreshCharacters) -> None:
        """An operator's reload of the settings folder (``data.admin_token``); send the characters."""
        await reload_from_socket(self.web, frame.admin_token)
        template_id = self.conversation.template_id if self.conversation else None
        await self.outbox.send(
            {
                "type": "characters",
                "characters": characters(self.engine, template_id) if template_id else [],
                "template_id": template_id,
            }
        )

    # -- jobs ------------------------------------------------------------------------------------

    async def turn(
        self, text: str, metadata: dict[str, Any] | None = None, client_id: str | None = None
    ) -> None:
        """Answer one user message (typed, or a finished spoken utterance with its metadata):
        a command to the live conversation, waited for until its turn is stored (the runtime
        fires ``transcribed`` for an utterance)."""
        await self.current_conversation()
        inbound = Inbound(text=text, metadata=dict(metadata or {}), idempotency_key=client_id)
        assert self.live is not None
        await self.live.submit(UserTurn(inbound, speech=self.speech(), origin=self.id))

    async def new_conversation(self, template_id: str | None, language: str | None) -> None:
        """End the socket's open conversation and start another."""
        current = await self.refreshed()
        if current is not None and current.is_open and current.channel == CHANNEL:
            await self.detach()  # the new one's ``conversation_started`` says enough
            live = self.web.context.conversations.get(current.id)
            await live.submit(End("new_conversation", farewell=False, origin=self.id))
        opened = await self.engine.open(
            self.user_id, CHANNEL, template_id=template_id, language=language, greet=self.greet
        )
        await self.announce(opened, carry_overrides=True)

    async def switch_to(self, conversation_id: str) -> None:
        """Make the resumed conversation the socket's conversation."""
        assert self.caller is not None
        self.use(await owned_conversation(self.caller, conversation_id))
        if self.attachment is not None:
            self.attachment.enable_silence()

    # -- conversation ----------------------------------------------------------------------------

    def use(self, conversation: ConversationRecord) -> None:
        """Make ``conversation`` current, with its stored model settings, and attach the socket
        to its live conversation (every event of it is rendered from now on)."""
        self.conversation = conversation
        self.conversation_open = conversation.is_open
        self.model_overrides = dict(conversation.state.get("model_settings") or {})
        if self.live is not None and self.live.id == conversation.id and self.attachment:
            return
        if self.attachment is not None:  # nothing of this socket runs there now: just leave
            self.attachment.close()
        self.live = self.web.context.conversations.get(conversation.id)
        self.attachment = self.live.subscribe(
            self.deliver, conversation=conversation, origin=self.id
        )
        self.live.set_speech(self.speech())

    async def detach(self) -> None:
        """Leave the live conversation: its events are no longer rendered; when no one else is
        attached, the reply this socket asked for is cut short (stored before this returns)."""
        live, attachment = self.live, self.attachment
        self.live = self.attachment = None
        if attachment is not None:
            attachment.close()
        if live is not None:
            await live.leave(self.id)

    async def refreshed(self) -> ConversationRecord | None:
        """The current conversation as stored now (None when there is none or it was erased)."""
        if self.conversation is None:
            return None
        return await store.get_conversation(self.conversation.id)

    async def current_conversation(self) -> ConversationRecord:
        """The current conversation if still open; otherwise the device's open one or a new one.

        No read while the live conversation knows it is open (it follows the conversation's
        events, from every process)."""
        known = self.live.open_record() if self.live is not None else None
        if known is not None and self.conversation is not None and known.id == self.conversation.id:
            self.conversation = known
            return known
        current = await self.refreshed()
        if current is not None and current.is_open and not self.engine.is_expired(current):
            self.conversation = current
            return current
        template_id = language = None
        if current is not None:
            language = current.language
            if current.template_id in self.engine.settings.templates:
                template_id = current.template_id
        opened = await self.engine.resume_or_open(
            self.user_id, CHANNEL, template_id=template_id, language=language, greet=self.greet
        )
        await self.announce(opened, carry_overrides=not opened.resumed)
        return opened.conversation

    async def announce(self, opened: Opened, *, carry_overrides: bool = False) -> None:
        """Make the opened conversation current; send ``conversation_started`` and the greeting
        (spoken when audio replies are on)."""
        overrides = self.model_overrides
        self.use(opened.conversation)
        if carry_overrides and overrides:
            self.model_overrides = overrides
            await self.store_overrides(opened.conversation.id)
        conversation = opened.conversation
        if self.live is not None:
            await self.live.ready()
        await self.outbox.send(
            {
                "type": "conversation_started",
                "conversation_id": conversation.id,
                "template_id": conversation.template_id,
                "characters": characters(self.engine, conversation.template_id),
                "language": conversation.language,
                "resumed": opened.resumed,
            }
        )
        if opened.greeting is not None:
            events = self.engine.replay(opened.greeting, speech=self.speech())
            await self.stream(events, conversation.id)
        if self.attachment is not None:
            self.attachment.enable_silence()

    async def store_overrides(self, conversation_id: str) -> None:
        """Write the socket's model settings into the conversation's state."""
        live = self.web.context.conversations.get(conversation_id)
        stored = await live.submit(ModelSettings(dict(self.model_overrides)))
        if stored is not None:
            self.conversation = stored
