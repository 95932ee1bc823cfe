"""Streams one responder's reply: stored before streaming, stored again with its final status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from parley.core import store
from parley.core.config import ModelSettings, Persona
from parley.core.events import ErrorEvent, Event, MessageCompleted, MessageStarted, TextDelta
from parley.core.plugins import Hooks
from parley.core.providers import LLMProvider, LLMRequest, ProviderError
from parley.core.store.records import ConversationRecord

__all__ = ["ReplyResult", "stream_reply"]


@dataclass(slots=True)
class ReplyResult:
    """What a finished reply left behind (filled while streaming)."""

    message_id: str | None = None
    text: str = ""
    status: str = "pending"
    metadata: dict[str, Any] = field(default_factory=dict)


async def stream_reply(
    *,
    conversation: ConversationRecord,
    persona: Persona,
    messages: list[dict[str, Any]],
    model: ModelSettings,
    llm: LLMProvider,
    hooks: Hooks,
    result: ReplyResult,
    started_at: float,
) -> AsyncIterator[Event]:
    """Yield MessageStarted, TextDelta*, MessageCompleted (and ErrorEvent on failure).

    If the consumer stops early (barge-in, disconnect) the message is stored as ``interrupted``
    with the text produced so far.
    """
    record = await store.add_message(
        conversation.id,
        "assistant",
        "",
        status="pending",
        name=persona.name,
        character_id=persona.id,
        lang=conversation.language,
        channel=conversation.channel,
    )
    result.message_id = record.id
    yield MessageStarted(record.id, persona.id, persona.name)
    pieces: list[str] = []
    usage = None
    llm_started = time.perf_counter()
    timing: dict[str, Any] = {}
    try:
        chunks = llm.stream(LLMRequest(messages=messages, model=model))
        async with aclosing(chunks):  # type: ignore[type-var]
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.text:
                    if not pieces:
                        first = round((time.perf_counter() - started_at) * 1000)
                        timing["llm_first_token_ms"] = first
                    pieces.append(chunk.text)
                    yield TextDelta(record.id, chunk.text, persona.id)
    except ProviderError as exc:
        result.text, result.status = "".join(pieces), "failed"
        timing["error"] = exc.code
        await _finish(result, record.id, usage, timing, llm_started)
        yield MessageCompleted(record.id, result.text, "failed", persona.id, persona.name)
        yield ErrorEvent(exc.code, exc.message, exc.retryable)
        return
    except (asyncio.CancelledError, GeneratorExit):
        result.text, result.status = "".join(pieces), "interrupted"
        await asyncio.shield(_finish(result, record.id, usage, timing, llm_started))
        raise
    text = "".join(pieces)
    result.text = await hooks.chain(
        "transform_response", "text", text, conversation=conversation, persona=persona
    )
    result.status = "complete"
    await _finish(result, record.id, usage, timing, llm_started)
    yield MessageCompleted(
        record.id,
        result.text,
        "complete",
        persona.id,
        persona.name,
        usage.prompt_tokens if usage else None,
        usage.completion_tokens if usage else None,
    )


async def _finish(
    result: ReplyResult, message_id: str, usage: Any, timing: dict[str, Any], llm_started: float
) -> None:
    timing["llm_ms"] = round((time.perf_counter() - llm_started) * 1000)
    result.metadata.update(timing)
    await store.update_message(
        message_id,
        content=result.text,
        status=result.status,
        tokens_in=usage.prompt_tokens if usage else None,
        tokens_out=usage.completion_tokens if usage else None,
        metadata=result.metadata,
    )
