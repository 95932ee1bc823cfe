"""Streams one responder's reply: stored before streaming, stored again with its final status.

With tools, the reply is a loop of LLM rounds: text streams as usual, tool-call fragments are
gathered, the calls run (concurrently) and their results go back to the model, up to
``llm.max_tool_steps`` rounds; the last round forbids further calls. The user sees one message
whose text is every round's text. Each call is stored as a ``tool`` message after the reply's
own (arguments, result and timing in its metadata); the reply's metadata keeps the rounds
(``tool_steps``) so the context can rebuild the exchange for later turns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from parley.core import store
from parley.core.config import ModelSettings, Persona, Settings
from parley.core.events import ErrorEvent, Event, MessageCompleted, MessageStarted, TextDelta
from parley.core.plugins import Hooks
from parley.core.providers import LLMProvider, LLMRequest, ProviderError, Usage
from parley.core.store.records import ConversationRecord, MessageRecord
from parley.core.tools import (
    Tool,
    ToolBatch,
    ToolCall,
    ToolCallAccumulator,
    ToolContext,
    ToolResult,
)

__all__ = ["PARTIAL_SAVE_INTERVAL", "ReplyResult", "ReplyTools", "stream_reply"]

PARTIAL_SAVE_INTERVAL = 1.0
"""Seconds between saves of a streaming reply's text, so a crash keeps what was produced."""


@dataclass(slots=True)
class ReplyResult:
    """What a finished reply left behind (filled while streaming)."""

    message_id: str | None = None
    text: str = ""
    status: str = "pending"
    metadata: dict[str, Any] = field(default_factory=dict)
    tool_messages: list[MessageRecord] = field(default_factory=list)
    """The stored ``tool`` messages of this reply, in call order."""
    stored: MessageRecord | None = None
    """The reply as stored when it finished (spoken replies get more metadata after)."""


@dataclass(frozen=True, slots=True)
class ReplyTools:
    """The tools a reply may use and how they run."""

    tools: dict[str, Tool]
    settings: Settings
    max_steps: int
    timeout: float


@dataclass(slots=True)
class _Usage:
    prompt: int = 0
    completion: int = 0
    seen: bool = False

    def add(self, usage: Usage) -> None:
        self.prompt += usage.prompt_tokens
        self.completion += usage.completion_tokens
        self.seen = True


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
    tools: ReplyTools | None = None,
) -> AsyncIterator[Event]:
    """Yield MessageStarted, TextDelta*, MessageCompleted (and ErrorEvent on failure).

    If the consumer stops early (barge-in, disconnect, cancellation) the message is stored as
    ``interrupted`` with the text produced so far, and running tool calls are cancelled and
    stored as ``cancelled``.
    """
    record = _Draft(conversation, persona)
    result.message_id = record.id
    yield MessageStarted(record.id, persona.id, persona.name)
    pieces: list[str] = []
    usage = _Usage()
    llm_started = saved_at = time.perf_counter()
    timing: dict[str, Any] = {}
    specs = [tool.spec() for tool in tools.tools.values()] if tools and tools.max_steps else []
    messages = list(messages)
    steps: list[dict[str, Any]] = []
    batch: ToolBatch | None = None
    try:
        step = 0
        while True:
            last_round = step >= (tools.max_steps if tools else 0)
            request = LLMRequest(
                messages=messages,
                model=model,
                tools=specs,
                tool_choice="none" if specs and last_round else None,
            )
            calls = ToolCallAccumulator()
            step_start = len(pieces)
            chunks = llm.stream(request)
            async with aclosing(chunks):  # type: ignore[type-var]
                async for chunk in chunks:
                    record.begin()  # the request has left: store the reply as pending
                    if chunk.provider:
                        result.metadata["llm_provider"] = chunk.provider
                    if chunk.usage is not None:
                        usage.add(chunk.usage)
                    if chunk.tool_calls:
                        calls.add(chunk.tool_calls)
                    if chunk.text:
                        if not pieces:
                            first = round((time.perf_counter() - started_at) * 1000)
                            timing["llm_first_token_ms"] = first
                        elif len(pieces) == step_start and not _spaced(pieces[-1], chunk.text):
                            # A new round continues the same message: keep words apart.
                            pieces.append(" ")
                            yield TextDelta(record.id, " ", persona.id)
                        pieces.append(chunk.text)
                        yield TextDelta(record.id, chunk.text, persona.id)
                        if time.perf_counter() - saved_at >= PARTIAL_SAVE_INTERVAL:
                            # What a crash would cut: kept when the reply is settled interrupted.
                            await record.stored()
                            await store.set_message_fields(record.id, content="".join(pieces))
                            saved_at = time.perf_counter()
            if not calls or last_round or tools is None:
                if calls and specs:
                    result.metadata["tool_steps_exhausted"] = True
                break
            pending = calls.calls()
            step_text = "".join(pieces[step_start:]).strip()
            messages.append(_assistant_calls(step_text, pending))
            steps.append({"text": step_text, "calls": [c.as_openai() for c in pending]})
            result.metadata["tool_steps"] = steps
            await record.stored()  # tool messages are stored after their reply
            context = ToolContext(conversation, persona, tools.settings)
            batch = ToolBatch(pending, tools.tools, context, timeout=tools.timeout)
            outcomes = await batch.run()
            batch = None
            await _store_tools(result, conversation, persona, record.id, step, outcomes)
            messages.extend(outcome.as_openai() for outcome in outcomes)
            step += 1
    except ProviderError as exc:
        result.text, result.status = "".join(pieces), "failed"
        timing["error"] = exc.code
        await _finish(result, record, usage, timing, llm_started)
        yield MessageCompleted(
            record.id,
            result.text,
            "failed",
            persona.id,
            persona.name,
            provider=result.metadata.get("llm_provider"),
        )
        yield ErrorEvent(exc.code, exc.message, exc.retryable)
        return
    except (asyncio.CancelledError, GeneratorExit):
        result.text, result.status = "".join(pieces), "interrupted"

        async def store_interrupted() -> None:
            await _interrupted(result, conversation, persona, record.id, batch, len(steps) - 1)
            await _finish(result, record, usage, timing, llm_started)

        # One shielded task: under an anyio cancel scope every further await raises again, so
        # a second shielded call would never start.
        await asyncio.shield(store_interrupted())
        raise
    text = "".join(pieces)
    result.text = await hooks.chain(
        "transform_response", "text", text, conversation=conversation, persona=persona
    )
    result.status = "complete"
    await _finish(result, record, usage, timing, llm_started)
    yield MessageCompleted(
        record.id,
        result.text,
        "complete",
        persona.id,
        persona.name,
        usage.prompt if usage.seen else None,
        usage.completion if usage.seen else None,
        result.metadata.get("llm_provider"),
    )


def _spaced(before: str, after: str) -> bool:
    return before[-1:].isspace() or after[:1].isspace()


def _assistant_calls(text: str, calls: list[ToolCall]) -> dict[str, Any]:
    """The assistant message that asks for ``calls`` (OpenAI shape)."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [call.as_openai() for call in calls],
    }


async def _store_tools(
    result: ReplyResult,
    conversation: ConversationRecord,
    persona: Persona,
    reply_id: str,
    step: int,
    outcomes: list[ToolResult],
) -> None:
    """Store each call as a ``tool`` message (after the reply's own message)."""
    for outcome in outcomes:
        metadata: dict[str, Any] = {
            "tool": outcome.call.name,
            "tool_call_id": outcome.call.id,
            "arguments": outcome.call.arguments,
            "reply_id": reply_id,
            "step": step,
            "started_at": outcome.started_at.isoformat(),
            "duration_ms": outcome.duration_ms,
        }
        if outcome.error:
            metadata["error"] = outcome.error
        stored = await store.add_message(
            conversation.id,
            "tool",
            outcome.content,
            status=outcome.status,
            name=outcome.call.name,
            character_id=persona.id,
            lang=conversation.language,
            metadata=metadata,
            channel=conversation.channel,
        )
        result.tool_messages.append(stored)


async def _interrupted(
    result: ReplyResult,
    conversation: ConversationRecord,
    persona: Persona,
    reply_id: str,
    batch: ToolBatch | None,
    step: int,
) -> None:
    """Store the calls of a round cut short: finished ones as they are, the rest cancelled."""
    if batch is not None:
        await _store_tools(result, conversation, persona, reply_id, step, batch.outcome())


class _Draft:
    """A reply announced before it is stored: its ``pending`` row is inserted once the LLM
    request has left (at the first chunk, while the rest streams), never between the user's
    stored message and the request. A reply that ends before that is inserted once, final."""

    def __init__(self, conversation: ConversationRecord, persona: Persona) -> None:
        self.id = str(uuid.uuid4())
        self.conversation = conversation
        self.persona = persona
        self._insert: asyncio.Task[MessageRecord] | None = None

    def _add(
        self, content: str = "", status: str = "pending", **fields: Any
    ) -> Coroutine[Any, Any, MessageRecord]:
        conversation = self.conversation
        return store.add_message(
            conversation.id,
            "assistant",
            content,
            status=status,
            name=self.persona.name,
            character_id=self.persona.id,
            lang=conversation.language,
            channel=conversation.channel,
            message_id=self.id,
            **fields,
        )

    def begin(self) -> None:
        """Insert the pending row in the background (once)."""
        if self._insert is None:
            self._insert = asyncio.ensure_future(self._add())
            self._insert.add_done_callback(_seen)

    async def stored(self) -> MessageRecord:
        """The pending row, inserted now if it was not begun. A cancelled caller never cancels
        the insert itself: the interrupted reply is then stored over it."""
        self.begin()
        assert self._insert is not None
        return await asyncio.shield(self._insert)

    async def write(self, **fields: Any) -> MessageRecord:
        """Store the reply's final fields (one UPDATE, or one INSERT when nothing was stored)."""
        if self._insert is None:
            return await self._add(**fields)
        record = await asyncio.shield(self._insert)
        await store.set_message_fields(self.id, **fields)  # one UPDATE: the rest is known
        return dataclasses.replace(record, **fields)


def _seen(task: asyncio.Task[MessageRecord]) -> None:
    """Mark an insert's failure as retrieved (the reply's own path raises it where it waits)."""
    if not task.cancelled():
        task.exception()


async def _finish(
    result: ReplyResult,
    record: _Draft,
    usage: _Usage,
    timing: dict[str, Any],
    llm_started: float,
) -> None:
    timing["llm_ms"] = round((time.perf_counter() - llm_started) * 1000)
    result.metadata.update(timing)
    fields: dict[str, Any] = {
        "content": result.text,
        "status": result.status,
        "tokens_in": usage.prompt if usage.seen else None,
        "tokens_out": usage.completion if usage.seen else None,
        "metadata": dict(result.metadata),
    }
    result.stored = await record.write(**fields)
