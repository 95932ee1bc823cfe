"""``/ws``: the WebSocket protocol (docs/protocol.md), one :class:`WebSession` per connection.

A transport over the conversation runtime (:mod:`parley.core.conversation`): frames become
commands for the live conversation the socket is attached to, and every event of it is rendered
as frames, whichever process or client caused it (a message from elsewhere first shows as a
``user_message`` frame). Frames that touch the conversation (``user_message``,
``new_conversation``, ``resume``'s switch, a finished utterance) are jobs one worker runs in the
order received (a turn job waits until its turn is stored); every other frame is handled at
once. All outgoing frames go through one :class:`Outbox`. Voice: :mod:`.ws_voice`; conversation
frames: :mod:`.ws_chat`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Any

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from parley.adapters.web.access import check_language
from parley.adapters.web.adapter import WebAdapter
from parley.adapters.web.client_frames import ClientFrame, Interrupt, parse_frame
from parley.adapters.web.frames import FrameError, audio_frame, error_frame, render
from parley.adapters.web.identity import CHANNEL, Caller, IdentityError, socket_identity
from parley.adapters.web.outbox import Outbox
from parley.adapters.web.shapes import message_json
from parley.adapters.web.ws_chat import ChatFrames
from parley.adapters.web.ws_voice import Voice
from parley.core import store
from parley.core.bus import Envelope
from parley.core.conversation_commands import Interrupt as InterruptCommand
from parley.core.conversation_silence import Silence
from parley.core.engine import EngineError
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ConversationEnded,
    ErrorEvent,
    Event,
    TurnCompleted,
    TurnStarted,
)
from parley.core.speech import SpeechOptions
from parley.server import CLOSE_TRY_AGAIN_LATER, ApiError, outage_frame

__all__ = ["WebSession", "websocket_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
"""A client frame's handler: it gets the frame's struct (:mod:`.client_frames`)."""

# Close codes sent after an error frame when a connection is refused.
CLOSE_BAD_REQUEST, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4400, 4401, 4403, 4404


class WebSession(ChatFrames):
    """One WebSocket connection: its caller, the live conversation it is attached to, its job
    queue and outbox."""

    def __init__(self, web: WebAdapter, socket: WebSocket[Any, Any, Any]) -> None:
        self.web = web
        self.socket = socket
        self.id = uuid.uuid4().hex
        """This socket's name on the event bus (the ``origin`` of the turns it asks for)."""
        self.outbox = Outbox(socket)
        self.caller = None
        self.conversation = None
        self.conversation_open = False
        """False once the current conversation ended (bye, max_turns, timeout)."""
        self.model_overrides = {}
        self.live = None
        self.attachment = None
        self.showing: tuple[str | None] | None = None
        """(origin,) of another client's turn being shown (its errors are shown too)."""
        self.jobs = asyncio.Queue()
        self.done = asyncio.Event()
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

    @property
    def nudges(self) -> Silence | None:
        """The silence timer of the attached conversation."""
        return self.live.silence if self.live is not None else None

    @property
    def replying(self) -> bool:
        """A reply of the attached conversation is running here (interrupt may cut it)."""
        return self.live is not None and self.live.replying

    @property
    def streaming(self) -> str | None:
        """Id of the message being streamed in the attached conversation, if any."""
        return self.live.streaming if self.live is not None else None

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
            await self.voice.close()
            if worker is not None:
                worker.cancel()
                with suppress(asyncio.CancelledError):
                    await worker
            self.web.sockets.discard(self)
            try:
                await self.detach()  # a reply it asked for is cut and stored first
            finally:
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
        try:
            external_id, subject = socket_identity(self.web.settings, query, headers)
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
            None,
            CHANNEL,
            identity=external_id,
            template_id=template_id,
            language=language,
            greet=self.greet,
        )
        self.caller = Caller(opened.conversation.user_id, external_id, subject)
        if opened.resumed and template_id and opened.conversation.template_id != template_id:
            # The client asked for another kind of conversation than the open one.
            await self.engine.end(opened.conversation.id, "new_conversation", farewell=False)
            opened = await self.engine.open(
                self.user_id, CHANNEL, template_id=template_id, language=language, greet=self.greet
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
        """Run queued jobs one at a time, in order."""
        while True:
            job = await self.jobs.get()
            await self.guarded(job)

    async def interrupt(self, metadata: dict[str, Any] | None = None) -> str | None:
        """Cut the reply in progress short (barge-in, the stop button); queued jobs go on.

        The runtime stores it as ``interrupted`` with its text so far and every socket of the
        conversation gets ``{"type": "interrupted", "message_id"}`` before anything else of the
        next job. Returns that message id, or None when no reply was running. ``metadata`` is
        merged into the cut message's stored metadata (the client's ``interrupt``).
        """
        if self.live is None:
            return None
        return await self.live.interrupt(metadata)

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

    def touch(self) -> None:
        """The user did something: the silence clock starts over."""
        if self.live is not None:
            self.live.touch()

    async def guarded(self, action: Callable[[], Awaitable[None]]) -> None:
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

    async def deliver(self, envelope: Envelope) -> None:
        """One event of the attached conversation (from this socket's turn or anyone else's)."""
        event = envelope.event
        mine = envelope.origin == self.id
        if isinstance(event, TurnStarted) and not mine:
            self.showing = (envelope.origin,)
            await self.show_user_message(event)
        elif isinstance(event, ErrorEvent) and not mine and self.showing != (envelope.origin,):
            return  # another client's request that failed before its turn began: its own news
        elif isinstance(event, ConversationEnded):
            if self.conversation is not None and event.conversation_id == self.conversation.id:
                self.conversation_open = False
        elif isinstance(event, AudioChunk | AudioCompleted) and not mine:
            if not self.voice.audio_on:
                return  # another client's spoken reply: this one reads it
        if isinstance(event, TurnCompleted):
            self.showing = None
        await self.send_event(event, envelope.conversation_id)

    async def show_user_message(self, event: TurnStarted) -> None:
        """``user_message``: a message that reached the conversation elsewhere, before its turn."""
        message = await store.get_message(event.user_message_id)
        if message is not None:
            await self.outbox.send(
                {
                    "type": "user_message",
                    "conversation_id": event.conversation_id,
                    "message": message_json(message),
                }
            )

    async def send_event(self, event: Event, conversation_id: str) -> bool:
        """One event as its frame (audio as a binary frame); False when the client left."""
        if isinstance(event, AudioChunk):
            return await self.outbox.send_bytes(audio_frame(event))
        frame = render(event, conversation_id)
        return frame is None or await self.outbox.send(frame)

    async def stream(self, events: AsyncIterator[Event], conversation_id: str) -> None:
        """Send events made for this socket alone (a replayed greeting) as they come."""
        async with aclosing(events) as stream:
            async for event in stream:
                if not await self.send_event(event, conversation_id):
                    return

    # -- incoming frames -----------------------------------------------------------------------

    async def on_interrupt(self, frame: Interrupt) -> None:
        """``interrupt``: the client stops a reply (its stop button, or speech over audio it is
        still playing after the server finished sending it). See docs/protocol.md.

        A reply in flight is cut short as by barge-in. Otherwise ``message_id``, when it is the
        latest assistant message of the socket's conversation and ``complete``, is marked
        ``interrupted`` (text kept) and the conversation's sockets get ``interrupted``. An id
        that is not an assistant message of this conversation is error ``unknown_message``;
        anything else (already interrupted, an older message, no id) changes nothing, silently.
        """
        message_id, played = frame.message_id, frame.played_sentences
        if frame.cause != "stop" and not self.barge_in_allowed():
            return  # speech or a message: the template's barge_in decides; a stop always cuts
        self.touch()
        conversation = self.conversation
        message = None  # a reply started here or elsewhere is known before it is stored:
        known = self.live is not None and message_id in (self.streaming, self.live.announced)
        if message_id is not None and not known:
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
        mine = message_id == self.streaming  # else the played counts name another one
        cut_metadata = metadata if mine else {"interrupted_by": "client"}
        cut = await self.interrupt(cut_metadata) if self.replying else None
        if cut is not None:  # cut mid-stream: the runtime published ``interrupted``
            return
        if message is None and message_id is not None:  # known: finished meanwhile, or elsewhere
            message = await store.get_message(message_id)
        pending = known if message is None else message.status == "pending"
        if pending and self.live is not None and message_id is not None:
            # Being written by another server process: that one cuts it, and ``interrupted``
            # comes back through the event bus.
            await self.live.request_interrupt(message_id, self.id)
            return
        if message is None or conversation is None or self.live is None:
            return
        # Finished (its audio may still play at the client): the runtime marks it when it is
        # still the latest reply, under the conversation's lock.
        stop = InterruptCommand(metadata=metadata, message_id=message.id, origin=self.id)
        await self.live.submit(stop)

    async def on_text(self, raw: str) -> None:
        """Parse and dispatch one text frame."""

        async def dispatch() -> None:
            frame: ClientFrame = parse_frame(raw, self.web.settings.max_body_bytes)
            await self.handlers[frame.type](frame)

        await self.guarded(dispatch)


@websocket("/ws")
async def websocket_handler(
    socket: WebSocket[Any, Any, Any], web: NamedDependency[WebAdapter]
) -> None:
    """The chat WebSocket: ``?device_id=`` (or ``?token=``), optional ``template_id``, ``language``."""
    await socket.accept()
    await WebSession(web, socket).run()
