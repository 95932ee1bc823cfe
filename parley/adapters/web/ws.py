"""``/ws``: the WebSocket protocol (docs/protocol.md), one :class:`WebSession` per connection.

Frames that touch the conversation (``user_message``, ``new_conversation``, the switch of
``resume``) become jobs that one worker runs strictly in the order received, so messages sent
while a reply streams are answered in turn, none dropped. Every other frame (``model_settings``,
``refresh_characters``, ``resume``'s history, voice controls) is handled at once, even while a
reply streams. All outgoing frames go through one :class:`Outbox`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from functools import partial
from typing import Any

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from parley.adapters.web.access import check_language, check_text, owned_conversation
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.frames import (
    FrameError,
    error_frame,
    merge_model_settings,
    optional_str,
    parse_frame,
    render,
    required_str,
)
from parley.adapters.web.history import readable_messages
from parley.adapters.web.identity import CHANNEL, Caller, IdentityError, bearer_token, identify
from parley.adapters.web.outbox import Outbox
from parley.adapters.web.shapes import characters, message_json
from parley.core import store
from parley.core.config import SettingsError
from parley.core.engine import Engine, EngineError, Opened, message_events
from parley.core.events import MessageCompleted, MessageStarted
from parley.core.inbound import Inbound
from parley.core.store.records import ConversationRecord
from parley.server import ApiError

__all__ = ["WebSession", "websocket_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
Job = Callable[[], Awaitable[None]]

MAX_QUEUED = 32
"""User messages waiting behind the current reply; more get a ``queue_full`` error frame."""

HISTORY_LIMIT = 500
"""Messages per ``history`` frame (``has_more`` tells when a client should page over HTTP)."""

# Close codes sent after an error frame when a connection is refused.
CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4400, 4401, 4403, 4404


class WebSession:
    """One WebSocket connection: its caller, current conversation, job queue and outbox."""

    def __init__(self, web: WebAdapter, socket: WebSocket[Any, Any, Any]) -> None:
        self.web = web
        self.socket = socket
        self.outbox = Outbox(socket)
        self.caller: Caller | None = None
        self.conversation: ConversationRecord | None = None
        self.model_overrides: dict[str, Any] = {}
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.done = asyncio.Event()
        self.current_job: asyncio.Task[None] | None = None
        self.streaming: str | None = None
        """Id of the message streaming now (None between replies)."""
        self.handlers: dict[str, Handler] = {
            "user_message": self.on_user_message,
            "new_conversation": self.on_new_conversation,
            "resume": self.on_resume,
            "model_settings": self.on_model_settings,
            "refresh_characters": self.on_refresh_characters,
            "start_listening": self.not_supported,
            "stop_listening": self.not_supported,
            "audio_settings": self.not_supported,
        }

    @property
    def engine(self) -> Engine:
        """The runtime's engine."""
        return self.web.engine

    @property
    def user_id(self) -> str:
        """The identified caller's user id."""
        return self.caller.user_id if self.caller else ""

    # -- life --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Identify the caller, start or resume the conversation, then serve frames until closed."""
        self.web.sockets.add(self)
        worker: asyncio.Task[None] | None = None
        try:
            if not await self.connect():
                return
            worker = asyncio.create_task(self.work())
            await self.receive()
        finally:
            if worker is not None:
                worker.cancel()
                with suppress(asyncio.CancelledError):
                    await worker
            self.web.sockets.discard(self)
            self.done.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the socket from the server's side."""
        await self.outbox.close(code, reason)

    async def refuse(self, close_code: int, code: str, message: str) -> bool:
        """Send an error frame and close the socket; returns False."""
        await self.outbox.send(error_frame(code, message))
        await self.outbox.close(close_code, code)
        return False

    async def connect(self) -> bool:
        """Identify the caller and send ``conversation_started``; False when refused."""
        headers, query = self.socket.headers, self.socket.query_params
        if not self.web.origin_allowed(headers.get("origin")):
            return await self.refuse(CLOSE_FORBIDDEN, "forbidden_origin", "origin not allowed")
        device_id = query.get("device_id") or headers.get("x-device-id")
        token = query.get("token")
        if token is None:
            token = bearer_token(headers.get("authorization"))
        try:
            self.caller = await identify(self.web.settings, device_id, token)
        except IdentityError as exc:
            close = CLOSE_BAD_REQUEST if exc.status == 400 else CLOSE_UNAUTHORIZED
            return await self.refuse(close, exc.code, exc.message)
        template_id, language = query.get("template_id"), query.get("language")
        try:
            check_language(language)
            if template_id is not None:
                self.engine.template(template_id)
        except ApiError as exc:
            return await self.refuse(CLOSE_BAD_REQUEST, exc.code, exc.detail)
        except EngineError as exc:
            return await self.refuse(CLOSE_NOT_FOUND, exc.code, exc.message)
        opened = await self.engine.resume_or_open(
            self.user_id, CHANNEL, template_id=template_id, language=language
        )
        if opened.resumed and template_id and opened.conversation.template_id != template_id:
            # The client asked for another kind of conversation than the open one.
            await self.engine.end(opened.conversation.id, "new_conversation", farewell=False)
            opened = await self.engine.open(
                self.user_id, CHANNEL, template_id=template_id, language=language
            )
        await self.announce(opened)
        return True

    async def receive(self) -> None:
        """Read frames until the client leaves; text frames are dispatched, binary ones too."""
        while True:
            try:
                message = await self.socket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await self.on_text(message["text"])
            elif message.get("bytes") is not None:
                await self.on_binary(message["bytes"])

    async def work(self) -> None:
        """Run queued jobs one at a time, in order (each in its own task: see :meth:`interrupt`)."""
        while True:
            job = await self.jobs.get()
            self.current_job = asyncio.create_task(self.guarded(job))
            try:
                await asyncio.wait({self.current_job})
            except asyncio.CancelledError:
                self.current_job.cancel()
                with suppress(asyncio.CancelledError):
                    await self.current_job
                raise
            finally:
                self.current_job = None

    async def interrupt(self) -> str | None:
        """Cut the job in progress short (barge-in); queued jobs go on.

        A reply cut mid-stream is stored as ``interrupted`` with its text so far, and the client
        gets ``{"type": "interrupted", "message_id"}``. Returns that message id, or None.
        """
        job, message_id = self.current_job, self.streaming
        if job is None or job.done():
            return None
        job.cancel()
        await asyncio.wait({job})
        if message_id is not None:
            await self.outbox.send({"type": "interrupted", "message_id": message_id})
        return message_id

    async def guarded(self, action: Job) -> None:
        """Run ``action``; what goes wrong becomes an error frame and the socket stays open."""
        try:
            await action()
        except (FrameError, EngineError) as exc:
            await self.outbox.send(error_frame(exc.code, exc.message))
        except ApiError as exc:
            await self.outbox.send(error_frame(exc.code, exc.detail))
        except Exception:
            log.exception("websocket frame failed")
            await self.outbox.send(error_frame("internal_error", "something went wrong"))

    # -- incoming frames -----------------------------------------------------------------------

    async def on_text(self, raw: str) -> None:
        """Parse and dispatch one text frame."""

        async def dispatch() -> None:
            kind, data = parse_frame(raw, self.web.settings.max_body_bytes)
            handler = self.handlers.get(kind)
            if handler is None:
                raise FrameError("unknown_type", f"unknown frame type {kind!r}")
            await handler(data)

        await self.guarded(dispatch)

    async def on_binary(self, data: bytes) -> None:
        """Binary frames are microphone audio, which needs an open listening session."""
        await self.outbox.send(error_frame("not_listening", "binary audio needs start_listening"))

    async def on_user_message(self, data: dict[str, Any]) -> None:
        """Queue a turn."""
        text = check_text(required_str(data, "text"), self.web.settings, name="data.text")
        if not self.web.limiter.allow(self.caller.external_id if self.caller else ""):
            raise FrameError("rate_limited", "too many messages; wait a moment")
        if self.jobs.qsize() >= MAX_QUEUED:
            raise FrameError("queue_full", "too many messages waiting for an answer")
        self.jobs.put_nowait(partial(self.turn, text))

    async def on_new_conversation(self, data: dict[str, Any]) -> None:
        """Queue the start of a new conversation (the open one ends, reason new_conversation)."""
        template_id = optional_str(data, "template_id")
        language = check_language(optional_str(data, "language"))
        self.engine.template(template_id)  # unknown_template now, not after the queue
        self.jobs.put_nowait(partial(self.new_conversation, template_id, language))

    async def on_resume(self, data: dict[str, Any]) -> None:
        """Send the history at once; switch to the conversation in order with queued messages."""
        conversation_id = required_str(data, "conversation_id")
        after = optional_str(data, "after_message_id")
        assert self.caller is not None
        conversation = await owned_conversation(self.caller, conversation_id)
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

    async def on_model_settings(self, data: dict[str, Any]) -> None:
        """Validate and store sampling overrides on the conversation (used from the next reply)."""
        self.model_overrides = merge_model_settings(self.model_overrides, data)
        if self.conversation is not None:
            await self.store_overrides(self.conversation.id)
        await self.outbox.send(
            {"type": "model_settings_updated", "model_settings": self.model_overrides}
        )

    async def on_refresh_characters(self, data: dict[str, Any]) -> None:
        """Reload personas and templates from the settings folder; send the characters."""
        try:
            self.web.runtime.reload_settings()
        except SettingsError as exc:
            raise FrameError("reload_failed", str(exc)) from None
        template_id = self.conversation.template_id if self.conversation else None
        await self.outbox.send(
            {
                "type": "characters",
                "characters": characters(self.engine, template_id) if template_id else [],
                "template_id": template_id,
            }
        )

    async def not_supported(self, data: dict[str, Any]) -> None:
        """Voice frames, until voice lands."""
        raise FrameError("not_supported", "voice is not available on this server yet")

    # -- jobs ------------------------------------------------------------------------------------

    async def turn(self, text: str) -> None:
        """Answer one user message, streaming every reply as it is produced."""
        conversation = await self.current_conversation()
        inbound = Inbound(text=text)
        try:
            async with aclosing(self.engine.turn(conversation.id, inbound)) as events:
                async for event in events:
                    if isinstance(event, MessageStarted | MessageCompleted):
                        self.streaming = (
                            event.message_id if isinstance(event, MessageStarted) else None
                        )
                    frame = render(event, conversation.id)
                    if frame is not None and not await self.outbox.send(frame):
                        return  # the client left: the reply is stored as interrupted
        finally:
            self.streaming = None

    async def new_conversation(self, template_id: str | None, language: str | None) -> None:
        """End the socket's open conversation and start another."""
        current = await self.refreshed()
        if current is not None and current.is_open and current.channel == CHANNEL:
            await self.engine.end(current.id, "new_conversation", farewell=False)
        opened = await self.engine.open(
            self.user_id, CHANNEL, template_id=template_id, language=language
        )
        await self.announce(opened, carry_overrides=True)

    async def switch_to(self, conversation_id: str) -> None:
        """Make the resumed conversation the socket's conversation."""
        assert self.caller is not None
        self.use(await owned_conversation(self.caller, conversation_id))

    # -- conversation ----------------------------------------------------------------------------

    def use(self, conversation: ConversationRecord) -> None:
        """Make ``conversation`` current, with its stored model settings."""
        self.conversation = conversation
        self.model_overrides = dict(conversation.state.get("model_settings") or {})

    async def refreshed(self) -> ConversationRecord | None:
        """The current conversation as stored now (None when there is none or it was erased)."""
        if self.conversation is None:
            return None
        return await store.get_conversation(self.conversation.id)

    async def current_conversation(self) -> ConversationRecord:
        """The current conversation if still open; otherwise the device's open one or a new one."""
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
            self.user_id, CHANNEL, template_id=template_id, language=language
        )
        await self.announce(opened, carry_overrides=not opened.resumed)
        return opened.conversation

    async def announce(self, opened: Opened, *, carry_overrides: bool = False) -> None:
        """Make the opened conversation current; send ``conversation_started`` and the greeting."""
        overrides = self.model_overrides
        self.use(opened.conversation)
        if carry_overrides and overrides:
            self.model_overrides = overrides
            await self.store_overrides(opened.conversation.id)
        conversation = opened.conversation
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
            for event in message_events(opened.greeting):
                frame = render(event, conversation.id)
                if frame is not None:
                    await self.outbox.send(frame)

    async def store_overrides(self, conversation_id: str) -> None:
        """Write the socket's model settings into the conversation's state."""
        conversation = await store.get_conversation(conversation_id)
        if conversation is None:
            return
        state = {**conversation.state, "model_settings": dict(self.model_overrides)}
        self.conversation = await store.update_conversation(conversation_id, state=state)


@websocket("/ws")
async def websocket_handler(
    socket: WebSocket[Any, Any, Any], web: NamedDependency[WebAdapter]
) -> None:
    """The chat WebSocket: ``?device_id=`` (or ``?token=``), optional ``template_id``, ``language``."""
    await socket.accept()
    await WebSession(web, socket).run()
