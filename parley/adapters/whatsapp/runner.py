"""Answers stored WhatsApp messages: the inbox's handler, one sender's messages in order.

A turn: mark the message read (with the typing indicator), download and hand over the audio of a
voice note, run the engine's turn on the stored message (the engine transcribes it and marks it
``complete``), send each reply as text (split at 4,096 characters) and, when asked, as a voice
note. A reply that cannot be sent is stored with status ``failed`` and the Graph error in its
metadata (``whatsapp_error``).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractContextManager, aclosing
from typing import TYPE_CHECKING, Any, Protocol

from parley.adapters.whatsapp.graph import GraphClient, GraphError
from parley.adapters.whatsapp.intake import prepare, recipient, remember_sent
from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.audio import AudioError, to_ogg_opus
from parley.core import store
from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ErrorEvent,
    MessageCompleted,
    TurnStarted,
)
from parley.core.inbound import Inbound
from parley.core.inbox_turns import settle_leftovers, stored_answer
from parley.core.locks import LocalLocks
from parley.core.speech import SpeechOptions
from parley.core.store.records import InboxRecord, MessageRecord
from parley.core.telemetry import joined
from parley.core.text import split_text

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext
    from parley.core.engine import Engine, Opened

__all__ = ["MAX_TEXT", "Host", "TurnRunner"]

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"

MAX_TEXT = 4096
"""WhatsApp's limit on a text message body."""


class Host(Protocol):
    """What the runner uses of its adapter (``adapter.WhatsAppAdapter``)."""

    context: AdapterContext
    settings: WhatsAppSettings
    senders: LocalLocks
    """One sender's conversation is resolved and written by one task at a time."""

    async def open_conversation(self, user_id: str) -> Opened:
        """The sender's open conversation, or a new one (hold ``senders`` first)."""
        ...


class TurnRunner:
    """Answers the stored messages the inbox hands it (any process; one sender at a time)."""

    def __init__(self, adapter: Host, graph: GraphClient) -> None:
        self.adapter = adapter
        self.context = adapter.context
        self.settings = adapter.settings
        self.graph = graph

    @property
    def engine(self) -> Engine:
        """The engine."""
        return self.context.engine

    # -- the inbox's handler --------------------------------------------------------------

    async def answer_item(self, item: InboxRecord) -> dict[str, Any]:
        """Answer the inbox item of one stored message (the inbox's handler for ``whatsapp``).

        Claimed again after its process died (``attempts`` > 1) with the turn already started,
        the reply it left ``pending`` becomes ``interrupted``; a reply it had stored complete is
        sent (the parts not recorded as delivered) and the turn is not run again; otherwise the
        message is answered again.
        """
        message = await store.get_message(str(item.user_message_id or ""))
        if message is None:
            return {"skipped": "message gone"}
        if item.attempts > 1 and message.status == "complete":
            async with self.context.locks.hold(message.conversation_id):
                await settle_leftovers(item)
            answer = await stored_answer(item)
            if answer is not None:
                await self._resend(str(message.metadata.get("wa_id")), answer)
                return answer
            log.info("WhatsApp message %s cut by a crash: answered again", item.key)
            await store.update_message(message.id, status="pending")
            message = await store.get_message(message.id) or message
        await self.answer(message)
        final = await store.get_message(message.id)
        return {"user_message_id": message.id, "status": final.status if final else None}

    async def _resend(self, wa_id: str, answer: dict[str, Any]) -> None:
        """Send the stored replies of a turn whose process died after storing them."""
        for message_id in answer.get("replies") or []:
            reply = await store.get_message(message_id)
            if reply is not None and reply.status == "complete" and reply.content.strip():
                await self._send_text(wa_id, reply.id, reply.content)

    @property
    def busy(self) -> int:
        """How many items the inbox is answering in this process."""
        return self.context.inbox.busy

    async def idle(self) -> None:
        """Wait until no inbox item is unfinished (tests)."""
        await self.context.inbox.idle()

    # -- one message -----------------------------------------------------------------------

    async def answer(self, message: MessageRecord, *, moved: bool = False) -> None:
        """Answer one stored message (nothing happens when it is no longer ``pending``)."""
        current = await store.get_message(message.id)
        if current is None or current.status != "pending":
            return
        metadata = dict(current.metadata)
        wa_id = recipient(metadata)  # the sender, or the group it wrote in
        wamid = current.platform_message_id
        if wamid and not moved:
            await self._mark_read(wamid)
        greeting_id = metadata.get("greeting_id")
        if greeting_id:
            with joined(metadata.get("trace")):  # its send joins the message's trace too
                await self._send_greeting(wa_id, greeting_id)
        inbound = Inbound(
            text=current.content,
            platform_message_id=wamid,
            metadata=metadata,
            user_message_id=current.id,
        )
        unanswerable = await prepare(self.graph, self.settings, inbound)  # audio, image
        if unanswerable is not None:
            await self._fail_user(current, unanswerable.code, **unanswerable.detail)
            await self._apologise(wa_id, unanswerable.apology)
            return
        speech = None
        if self._wants_voice(bool(metadata.get("voice"))):
            speech = SpeechOptions(output_format=self.settings.voice_format)
        progress = {"sent": False}
        try:
            await self._turn(current, wa_id, inbound, speech, moved, progress)
        except asyncio.CancelledError:
            if not progress["sent"]:
                # Stopped (shutdown past drain_timeout) before anything reached the user: put the
                # message back so the next start answers it; the cut reply stays `interrupted`.
                await asyncio.shield(store.update_message(current.id, status="pending"))
            raise

    def _wants_voice(self, voice_note: bool) -> bool:
        mode = self.settings.reply_voice
        if mode == "never" or self.engine.tts is None:
            return False
        return mode == "always" or voice_note

    async def _turn(
        self,
        message: MessageRecord,
        wa_id: str,
        inbound: Inbound,
        speech: SpeechOptions | None,
        moved: bool,
        progress: dict[str, bool],
    ) -> None:
        started = False
        errors: list[ErrorEvent] = []
        audio: dict[str, bytearray] = {}
        formats: dict[str, str] = {}
        failed_text: set[str] = set()
        turn = self.engine.turn(message.conversation_id, inbound, speech=speech)
        async with aclosing(turn) as events:
            async for event in events:
                if isinstance(event, TurnStarted):
                    started = True
                elif isinstance(event, MessageCompleted):
                    if event.status != "failed" and event.text.strip():
                        if await self._send_text(wa_id, event.message_id, event.text):
                            progress["sent"] = True
                        else:
                            failed_text.add(event.message_id)
                elif isinstance(event, AudioChunk):
                    audio.setdefault(event.message_id, bytearray()).extend(event.data)
                    formats[event.message_id] = event.format
                elif isinstance(event, AudioCompleted):
                    data = audio.pop(event.message_id, None)
                    if data and event.message_id not in failed_text:
                        fmt = formats.get(event.message_id, self.settings.voice_format)
                        await self._send_voice(wa_id, event.message_id, bytes(data), fmt)
                elif isinstance(event, ErrorEvent):
                    log.warning(
                        "WhatsApp turn on %s: %s (%s)",
                        message.platform_message_id,
                        event.code,
                        event.message,
                    )
                    errors.append(event)
        if started:
            return
        codes = {error.code for error in errors}
        if "conversation_ended" in codes and not moved:
            await self._move_to_open_conversation(message)
            return
        error = errors[0] if errors else ErrorEvent("turn_failed", "the turn did not start")
        await self._fail_user(message, error.code, message=error.message)

    # -- helpers ---------------------------------------------------------------------------

    async def _mark_read(self, wamid: str) -> None:
        try:
            await self.graph.mark_read(wamid, typing=True)
        except GraphError:
            pass  # logged by the client; the reply matters more than the receipt

    async def _send_greeting(self, wa_id: str, greeting_id: str) -> None:
        greeting = await store.get_message(str(greeting_id))
        if greeting is None or "whatsapp_ids" in greeting.metadata or not greeting.content:
            return
        await self._send_text(wa_id, greeting.id, greeting.content)

    async def _send_text(self, wa_id: str, message_id: str, text: str) -> bool:
        """Send a stored assistant message as text; record the wamids or the failure.

        Each part delivered is recorded (an outbound send record) before the next is sent, so a
        turn retried after a crash skips what already reached the user.
        """
        sent: list[str] = []
        try:
            for index, part in enumerate(split_text(text, MAX_TEXT)):
                key = f"{message_id}:text:{index}"
                already = await store.sent(CHANNEL, key)
                if already is not None:
                    sent.append(already)
                    continue
                with self._send_span(message_id, "text"):
                    wamid = await self.graph.send_text(wa_id, part) or ""
                await store.record_send(CHANNEL, key, wamid)
                await remember_sent(wamid, message_id)  # status callbacks find the reply
                sent.append(wamid)
        except GraphError as exc:
            await self._record(
                message_id, status="failed", whatsapp_ids=sent, whatsapp_error=exc.as_metadata()
            )
            return False
        await self._record(message_id, whatsapp_ids=sent)
        return True

    def _send_span(self, message_id: str, kind: str) -> AbstractContextManager[Any]:
        """A ``platform.send`` span (the trace of a turn ends with what reached the user)."""
        attributes = {
            "parley.channel": CHANNEL,
            "parley.message_id": message_id,
            "parley.kind": kind,
        }
        return self.context.telemetry.span("platform.send", **attributes)

    async def _send_voice(self, wa_id: str, message_id: str, pcm: bytes, fmt: str) -> None:
        """Convert to OGG/Opus, upload, send as a voice note; a failure keeps the text reply."""
        try:
            ogg, seconds = await asyncio.to_thread(to_ogg_opus, pcm, source_format=fmt)
        except (AudioError, ImportError) as exc:
            log.warning("voice note for message %s not made: %s", message_id, exc)
            await self._record(message_id, whatsapp_voice_error={"message": str(exc)})
            return
        key = f"{message_id}:voice"
        if await store.sent(CHANNEL, key) is not None:
            return  # delivered by the attempt a crash cut
        try:
            with self._send_span(message_id, "voice"):
                media_id = await self.graph.upload_media(ogg, "audio/ogg", "reply.ogg")
                wamid = await self.graph.send_voice(wa_id, media_id)
            await store.record_send(CHANNEL, key, wamid)
            await remember_sent(wamid, message_id)
        except GraphError as exc:
            await self._record(message_id, whatsapp_voice_error=exc.as_metadata())
            return
        await self._record(
            message_id,
            whatsapp_voice={"id": wamid, "media_id": media_id, "seconds": round(seconds, 2)},
        )

    async def _record(self, message_id: str, *, status: str | None = None, **metadata: Any) -> None:
        current = await store.get_message(message_id)
        if current is None:
            return
        fields: dict[str, Any] = {"metadata": {**current.metadata, **metadata}}
        if status is not None:
            fields["status"] = status
        await store.update_message(message_id, **fields)

    async def _apologise(self, to: str, text: str) -> None:
        """Tell the user their message gets no answer (a failure to send is logged)."""
        try:
            await self.graph.send_text(to, text)
        except GraphError:
            pass  # logged by the client

    async def _fail_user(self, record: MessageRecord, code: str, **detail: Any) -> None:
        """The message cannot be answered: keep it, ``failed``, so a restart does not retry it."""
        log.warning("WhatsApp message %s not answered: %s", record.platform_message_id, code)
        await self._record(record.id, status="failed", error={"code": code, **detail})

    async def _move_to_open_conversation(self, message: MessageRecord) -> None:
        """The conversation ended before the message was answered: answer it in a new one."""
        conversation = await store.get_conversation(message.conversation_id)
        if conversation is None:
            return
        wa_id = str(message.metadata.get("wa_id"))
        base = {k: v for k, v in message.metadata.items() if k != "greeting_id"}
        async with self.adapter.senders.hold(wa_id):
            opened = await self.adapter.open_conversation(conversation.user_id)
            # Free the wamid (unique per channel) for the copy in the open conversation.
            await store.update_message(message.id, status="failed", platform_message_id=None)
            metadata = dict(base)
            if opened.greeting is not None:
                metadata["greeting_id"] = opened.greeting.id
            moved = await store.add_message(
                opened.conversation.id,
                "user",
                message.content,
                status="pending",
                lang=opened.conversation.language,
                metadata=metadata,
                channel=message.channel,
                platform_message_id=message.platform_message_id,
            )
            error = {"code": "conversation_ended"}
            await store.update_message(
                message.id, metadata={**base, "error": error, "moved_to": moved.id}
            )
        await self.answer(moved, moved=True)
