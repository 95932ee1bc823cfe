"""A turn's first steps: store what the user sent (before any provider is called), transcribe it."""

from __future__ import annotations

import dataclasses
import logging

from parley.core import store
from parley.core.events import ErrorEvent
from parley.core.inbound import Inbound
from parley.core.providers import ProviderError, STTProvider, Transcription
from parley.core.store.records import ConversationRecord, MessageRecord

__all__ = ["store_audio_message", "store_user_message", "transcribe"]

log = logging.getLogger(__name__)


async def store_audio_message(conversation: ConversationRecord, inbound: Inbound) -> Inbound:
    """Store a spoken message as ``pending`` before transcription (unless already stored).

    Returns the inbound pointing at the stored message (``user_message_id``).
    """
    audio = {"mime": inbound.audio_mime, "bytes": len(inbound.audio or b"")}
    metadata = {**inbound.metadata, "audio": {**audio, **inbound.metadata.get("audio", {})}}
    if inbound.user_message_id is not None:
        return dataclasses.replace(inbound, metadata=metadata)
    stored = await store.add_message(
        conversation.id,
        "user",
        inbound.text,
        status="pending",
        lang=conversation.language,
        metadata=metadata,
        channel=conversation.channel,
        platform_message_id=inbound.platform_message_id,
    )
    return dataclasses.replace(
        inbound, metadata=metadata, user_message_id=stored.id, platform_message_id=None
    )


async def transcribe(
    stt: STTProvider | None, conversation: ConversationRecord, inbound: Inbound, text: str
) -> tuple[Transcription | None, ErrorEvent | None]:
    """Transcribe ``inbound.audio``; on failure or silence mark the stored message ``failed``.

    Returns the transcription, or the error event to give the user (and then no turn runs).
    """
    error: ErrorEvent | None = None
    transcription = None
    if stt is None:
        error = ErrorEvent("stt_unavailable", "no speech-to-text provider is configured")
    else:
        try:
            assert inbound.audio is not None
            transcription = await stt.transcribe(
                inbound.audio, mime_type=inbound.audio_mime, language=conversation.language
            )
        except ProviderError as exc:
            error = ErrorEvent("stt_failed", exc.message, exc.retryable)
        except Exception as exc:
            log.exception("speech-to-text failed")
            error = ErrorEvent("stt_failed", f"speech recognition failed: {exc}")
    if transcription is not None and transcription.provider:
        inbound.metadata["stt_provider"] = transcription.provider  # stored on the user message
    if error is None and transcription is not None and not (transcription.text + text).strip():
        error = ErrorEvent("stt_empty", "no speech was recognised in the audio")
    if error is not None and inbound.user_message_id is not None:
        await store.update_message(
            inbound.user_message_id,
            status="failed",
            metadata={**inbound.metadata, "error": {"code": error.code, "message": error.message}},
        )
    return (None, error) if error is not None else (transcription, None)


async def store_user_message(
    conversation: ConversationRecord,
    inbound: Inbound,
    text: str,
    timing: dict[str, int],
    *,
    window: int = 0,
) -> tuple[MessageRecord, store.ReadWindow | None]:
    """Store the turn's user message (or complete the one stored ahead of its turn); with it,
    the history ``window`` when the database read it in the same statement (PostgreSQL:
    :func:`~parley.core.store.add_message_and_window`), else None."""
    metadata = dict(inbound.metadata)
    if inbound.image_urls:
        metadata["images"] = list(inbound.image_urls)
    metadata.update(timing)
    if inbound.user_message_id:
        # Stored ahead of its turn (e.g. by the WhatsApp adapter, or before transcription):
        # answered now, so it moves after the messages stored meanwhile.
        stored = await store.update_message(
            inbound.user_message_id,
            content=text,
            status="complete",
            metadata=metadata,
            move_to_end=True,
        )
        return stored, None
    return await store.add_message_and_window(
        conversation.id,
        "user",
        text,
        window=window,
        lang=conversation.language,
        metadata=metadata,
        channel=conversation.channel,
        platform_message_id=inbound.platform_message_id,
    )
