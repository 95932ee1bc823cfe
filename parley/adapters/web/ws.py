"""``/ws``: the WebSocket protocol (docs/protocol.md), one :class:`WebSession` per connection.

Frames that touch the conversation (``user_message``, ``new_conversation``, the switch of
``resume``, a finished spoken utterance) become jobs that one worker runs strictly in the order
received, so messages sent while a reply streams are answered in turn, none dropped. Every other
frame (``model_settings``, ``refresh_characters``, ``resume``'s history, voice controls, audio)
is handled at once, even while a reply streams. All outgoing frames go through one
:class:`Outbox`. Voice lives in :mod:`~parley.adapters.web.ws_voice` (listening, audio replies,
barge-in), silence in :mod:`~parley.adapters.web.nudges`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Any

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from parley.adapters.web.access import check_language
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.frames import (
    FrameError,
    audio_frame,
    error_frame,
    optional_str,
    parse_frame,
    render,
)
from parley.adapters.web.identity import CHANNEL, Caller, IdentityError, bearer_token, identify
from parley.adapters.web.nudges import Nudges
from parley.adapters.web.outbox import Outbox
from parley.adapters.web.ws_chat import ChatFrames, Job
from parley.adapters.web.ws_voice import Voice
from parley.core import store
from parley.core.engine import EngineError
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ConversationEnded,
    Event,
    MessageCompleted,
    MessageStarted,
)
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord
from parley.server import CLOSE_TRY_AGAIN_LATER, ApiError, outage_frame

__all__ = ["WebSession", "websocket_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

INTERRUPT_CAUSES = ("stop", "speech", "message")
"""Why the client sent ``interrupt``: its stop button (always honoured), or the user speaking or
typing over audio it still plays (honoured like barge-in: audio replies on, template allows)."""

# Close codes sent after an error frame when a connection is refused.
CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4400, 4401, 4403, 4404


class WebSession(ChatFrames):
    """One WebSocket connection: its caller, current conversation, job queue and outbox."""

    def __init__(self, web: WebAdapter, socket: WebSocket[Any, Any, Any]) -> None:
        self.web = web
        self.socket = socket
        self.outbox = Outbox(socket)
        self.caller: Caller | None = None
        self.conversation: ConversationRecord | None = None
        self.conversation_open = False
        """False once the current conversation ended on this socket (bye, max_turns, timeout)."""
        self.model_overrides: dict[str, Any] = {}
        self.jobs: asyncio.Queue[tuple[Job, bool]] = asyncio.Queue()
        """Jobs in order, each with whether it is a reply that barge-in may cut short."""
        self.done = asyncio.Event()
        self.current_job: asyncio.Task[None] | None = None
        self.replying = False
        """The current job is a reply (a turn, a nudge): barge-in may cut it short."""
        self.streaming: str | None = None
        """Id of the message whose text or audio is being sent (None between messages)."""
        self._cut: asyncio.Task[None] | None = None
        self._cut_metadata: dict[str, Any] | None = None
        """What the client's ``interrupt`` adds to the metadata of the message it cuts."""
        self.nudges = Nudges(self)
        self.voice = Voice(self)
        self.handlers: dict[str, Handler] = {
            "user_message": self.on_user_message,
            "new_conversation": self.on_new_conversation,
            "resume": self.on_resume,
            "model_settings": self.on_model_settings,
            "refresh_characters": self.on_refresh_characters,
            "start_listening": self.voice.on_start_listening,
            "stop_listening": self.voice.on_stop_listening,
            "audio_settings": self.voice.on_audio_settings,
            "interrupt": self.on_interrupt,
        }

    # -- life --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Identify the caller, start or resume the conversation, then serve frames until closed."""
        self.web.sockets.add(self)
        worker: asyncio.Task[None] | None = None
        try:
            try:
                if not await self.connect():
                    return
            except Exception as exc:
                frame = outage_frame(exc, "websocket connect")
                if frame is None:
                    raise
                await self.outbox.send(frame)
                await self.outbox.close(CLOSE_TRY_AGAIN_LATER, "unavailable")
                return
            worker = asyncio.create_task(self.work())
            await self.receive()
        finally:
            self.nudges.stop()
            await self.voice.close()
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
        """Read frames until the client leaves: text frames are dispatched, binary ones are audio."""
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
                await self.guarded(lambda data=message["bytes"]: self.voice.on_binary(data))

    async def work(self) -> None:
        """Run queued jobs one at a time, in order (each in its own task: see :meth:`interrupt`)."""
        while True:
            if self.jobs.empty():
                self.nudges.idle()
            job, replying = await self.jobs.get()
            self.nudges.busy()
            self.replying = replying
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
                self.replying = False

    def queue_prompt(self, job: Job) -> None:
        """Queue something the assistant says on its own (a nudge); barge-in may cut it short."""
        self.jobs.put_nowait((job, True))

    async def interrupt(self, metadata: dict[str, Any] | None = None) -> str | None:
        """Cut the reply in progress short (barge-in); queued jobs go on.

        A reply cut mid-stream is stored as ``interrupted`` with its text so far, and the client
        gets ``{"type": "interrupted", "message_id"}`` before anything else of the next job.
        Returns that message id, or None when no reply was running. ``metadata`` is merged into
        the cut message's stored metadata (the client's ``interrupt``).
        """
        job, message_id = self.current_job, self.streaming
        if job is None or job.done() or not self.replying:
            return None
        if self._cut is not job:  # cancel once: a second cancel would cut the clean-up short
            self._cut = job
            self._cut_metadata = metadata
            job.cancel()
        try:
            await asyncio.wait({job})
        finally:
            self._cut_metadata = None
        return message_id

    def barge_in_allowed(self) -> bool:
        """Whether the user's speech or messages may cut a reply short: audio replies are on
        and the template allows barge-in."""
        if not self.voice.audio_on:
            return False
        conversation = self.conversation
        try:
            return conversation is None or self.engine.template(conversation.template_id).barge_in
        except EngineError:
            return True

    async def barge_in(self) -> None:
        """The user cut in (speech, an interim transcript, a message): interrupt the reply in
        flight when audio replies are on and the template allows barge-in."""
        if self.replying and self.barge_in_allowed():
            await self.interrupt()

    async def guarded(self, action: Job) -> None:
        """Run ``action``; what goes wrong becomes an error frame and the socket stays open."""
        try:
            await action()
        except (FrameError, EngineError) as exc:
            await self.outbox.send(error_frame(exc.code, exc.message))
        except ApiError as exc:
            await self.outbox.send(error_frame(exc.code, exc.detail))
        except Exception as exc:
            frame = outage_frame(exc)  # the database or Redis is down: the client sends again
            if frame is None:
                log.exception("websocket frame failed")
                frame = error_frame("internal_error", "something went wrong")
            await self.outbox.send(frame)

    # -- outgoing ------------------------------------------------------------------------------

    def speech(self) -> SpeechOptions | None:
        """How replies are spoken now (None: text only)."""
        return self.voice.speech()

    async def stream(
        self, events: AsyncIterator[Event], conversation_id: str, *, spoken: bool = False
    ) -> None:
        """Send a reply's events as they come: JSON frames, and audio as binary frames.

        ``spoken``: the events include speech, so a message is in flight until its
        ``AudioCompleted`` rather than its ``MessageCompleted``.

        Cut short by :meth:`interrupt`, the client gets an ``interrupted`` frame for the message
        in flight (the engine has stored it as ``interrupted`` by then).
        """
        try:
            async with aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, MessageStarted):
                        self.streaming = event.message_id
                    elif isinstance(event, AudioCompleted) or (
                        isinstance(event, MessageCompleted) and not spoken
                    ):
                        self.streaming = None
                    elif isinstance(event, ConversationEnded):
                        self.conversation_open = False
                    if isinstance(event, AudioChunk):
                        sent = await self.outbox.send_bytes(audio_frame(event))
                    else:
                        frame = render(event, conversation_id)
                        sent = frame is None or await self.outbox.send(frame)
                    if not sent:
                        return  # the client left: the reply is stored as interrupted
        except asyncio.CancelledError:
            if self._cut is asyncio.current_task() and self.streaming is not None:
                if self._cut_metadata is not None:  # the client's interrupt: say so
                    with suppress(LookupError):
                        await self.merge_metadata(self.streaming, self._cut_metadata)
                await self.outbox.send({"type": "interrupted", "message_id": self.streaming})
            raise
        finally:
            self.streaming = None

    async def send_turn_complete(self, conversation_id: str, *, reason: str) -> None:
        """``turn_complete`` for a conversation that ended outside a turn (timeout)."""
        conversation = await self.refreshed()
        await self.outbox.send(
            {
                "type": "turn_complete",
                "turn_count": conversation.turn_count if conversation else 0,
                "conversation_ended": True,
                "reason": reason,
                "conversation_id": conversation_id,
            }
        )

    # -- incoming frames -----------------------------------------------------------------------

    async def on_interrupt(self, data: dict[str, Any]) -> None:
        """``interrupt``: the client stops a reply (its stop button, or speech over audio it is
        still playing after the server finished sending it). See docs/protocol.md.

        A reply in flight is cut short as by barge-in. Otherwise ``message_id``, when it is the
        latest assistant message of the socket's conversation and ``complete``, is marked
        ``interrupted`` (text kept) and the client gets ``interrupted``. An id that is not an
        assistant message of this conversation is error ``unknown_message``; anything else
        (already interrupted, an older message, no id) changes nothing and is not answered.
        """
        message_id = optional_str(data, "message_id")
        played = data.get("played_sentences")
        if played is not None and (
            isinstance(played, bool) or not isinstance(played, int) or played < 0
        ):
            raise FrameError("invalid_frame", "data.played_sentences must be an integer >= 0")
        cause = data.get("cause", "stop")
        if cause not in INTERRUPT_CAUSES:
            raise FrameError(
                "invalid_frame", f"data.cause must be one of {', '.join(INTERRUPT_CAUSES)}"
            )
        if cause != "stop" and not self.barge_in_allowed():
            return  # speech or a message: the template's barge_in decides; a stop always cuts
        self.nudges.touch()
        conversation = self.conversation
        message = None
        if message_id is not None:
            message = await store.get_message(message_id)
            if (
                message is None
                or conversation is None
                or message.conversation_id != conversation.id
                or message.role != "assistant"
            ):
                raise FrameError("unknown_message", "no assistant message with this id here")
        metadata: dict[str, Any] = {"interrupted_by": "client"}
        if played is not None:
            metadata["sentences_played"] = played
        cut_metadata = metadata
        if message is None or message.id != self.streaming:  # played counts name another one
            cut_metadata = {"interrupted_by": "client"}
        cut = await self.interrupt(cut_metadata) if self.replying else None
        if cut is not None:  # cut mid-stream: the client got ``interrupted`` from stream()
            return
        if message is None or conversation is None:
            return
        latest = await store.latest_message(conversation.id, role="assistant")
        if latest is None or latest.id != message.id or latest.status != "complete":
            return
        await store.update_message(
            message.id, status="interrupted", metadata={**latest.metadata, **metadata}
        )
        await self.outbox.send({"type": "interrupted", "message_id": message.id})

    async def merge_metadata(self, message_id: str, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into a stored message's metadata."""
        stored = await store.get_message(message_id)
        if stored is not None:
            await store.update_message(message_id, metadata={**stored.metadata, **extra})

    async def on_text(self, raw: str) -> None:
        """Parse and dispatch one text frame."""

        async def dispatch() -> None:
            kind, data = parse_frame(raw, self.web.settings.max_body_bytes)
            handler = self.handlers.get(kind)
            if handler is None:
                raise FrameError("unknown_type", f"unknown frame type {kind!r}")
            await handler(data)

        await self.guarded(dispatch)


@websocket("/ws")
async def websocket_handler(
    socket: WebSocket[Any, Any, Any], web: NamedDependency[WebAdapter]
) -> None:
    """The chat WebSocket: ``?device_id=`` (or ``?token=``), optional ``template_id``, ``language``."""
    await socket.accept()
    await WebSession(web, socket).run()
