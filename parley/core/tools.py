"""Tools the model may call: the Tool type, the registry, and running one round of calls.

Plugins contribute tools through the ``register_tools`` hook; personas list the tools they may
use (``personas.<id>.tools``). The reply loop (``reply.py``) streams the model's tool-call
fragments into a :class:`ToolCallAccumulator`, runs the finished calls as a :class:`ToolBatch`
(concurrently, each within ``tools.timeout``), and sends the results back to the model.
A tool never breaks a turn: a failure, a timeout or bad arguments become an error result.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.core.providers import ToolCallDelta
from parley.core.telemetry import turn_span

if TYPE_CHECKING:
    from parley.core.config import Persona, Settings
    from parley.core.store.records import ConversationRecord

__all__ = [
    "Tool",
    "ToolBatch",
    "ToolCall",
    "ToolCallAccumulator",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "error_content",
]

log = logging.getLogger(__name__)

CANCEL_GRACE = 1.0
"""Seconds cancelled tool calls get to finish their cleanup when a reply is interrupted."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call.

    ``function`` is called with the model's arguments as keywords (``async def`` or plain); when
    it declares a parameter named ``context`` it also gets a :class:`ToolContext`. It returns a
    string or anything JSON-serialisable; raising sends an error result to the model instead.
    """

    name: str
    """Unique name the model calls (letters, digits, ``_`` and ``-``)."""
    description: str
    """What the tool does and when to use it: the model reads this."""
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    function: Callable[..., Any]
    """The implementation."""
    timeout: float | None = None
    """Seconds before the call is cancelled; None uses ``tools.timeout``."""

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @property
    def takes_context(self) -> bool:
        """Whether the function declares a ``context`` parameter."""
        try:
            return "context" in inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            return False


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is calling: handed to tool functions that declare a ``context`` parameter."""

    conversation: ConversationRecord
    persona: Persona
    settings: Settings
    call_id: str = ""


class ToolRegistry:
    """Tools by name, filled by the ``register_tools`` hooks. The first registration of a name wins."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``; a second tool with the same name is ignored with a warning."""
        if not isinstance(tool, Tool):
            raise TypeError(f"register_tools: expected a Tool, got {type(tool).__name__}")
        if tool.name in self.tools:
            log.warning("tool %r is registered twice; keeping the first one", tool.name)
            return
        self.tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def names(self) -> list[str]:
        """Registered tool names, sorted."""
        return sorted(self.tools)

    def for_persona(self, persona: Persona) -> dict[str, Tool]:
        """The tools ``persona`` may call (names it lists that are registered), in its order."""
        return {name: self.tools[name] for name in persona.tools if name in self.tools}


@dataclass(slots=True)
class ToolCall:
    """One complete tool call requested by the model."""

    id: str
    name: str
    arguments: str = "{}"
    """The raw JSON arguments, as the model wrote them."""

    def as_openai(self) -> dict[str, Any]:
        """The entry of an assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ToolCallAccumulator:
    """Joins streamed :class:`ToolCallDelta` fragments into complete calls, by index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: Iterable[ToolCallDelta]) -> None:
        """Take the fragments of one chunk."""
        for delta in deltas:
            call = self._calls.setdefault(delta.index, {"id": None, "name": None, "args": []})
            call["id"] = call["id"] or delta.id
            call["name"] = call["name"] or delta.name
            if delta.arguments:
                call["args"].append(delta.arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> list[ToolCall]:
        """The calls in index order; a missing id is made up, empty arguments become ``{}``."""
        out = []
        for index in sorted(self._calls):
            call = self._calls[index]
            out.append(
                ToolCall(
                    id=call["id"] or f"call_{index}_{uuid.uuid4().hex[:12]}",
                    name=call["name"] or "",
                    arguments="".join(call["args"]) or "{}",
                )
            )
        return out


@dataclass(slots=True)
class ToolResult:
    """The outcome of one call: what the model is told, and what is stored."""

    call: ToolCall
    content: str
    """The tool message's content for the model."""
    status: str
    """``complete``, ``failed`` or ``cancelled``."""
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: int = 0

    def as_openai(self) -> dict[str, Any]:
        """The ``tool`` message answering the call."""
        return {"role": "tool", "tool_call_id": self.call.id, "content": self.content}


def error_content(message: str) -> str:
    """The content of an error result (JSON, so the model can tell it apart)."""
    return json.dumps({"error": message}, ensure_ascii=False)


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class ToolBatch:
    """One round of calls, run concurrently. :meth:`outcome` is valid even after cancellation."""

    def __init__(
        self,
        calls: list[ToolCall],
        tools: dict[str, Tool],
        context: ToolContext,
        *,
        timeout: float,
    ) -> None:
        self.calls = calls
        self.tools = tools
        self.context = context
        self.timeout = timeout
        self._started = [datetime.now(UTC)] * len(calls)
        self._results: list[ToolResult | None] = [None] * len(calls)

    async def run(self) -> list[ToolResult]:
        """Run every call; cancelling this cancels the calls still running."""
        tasks = [
            asyncio.create_task(self._run_one(i), name=f"tool:{call.name}")
            for i, call in enumerate(self.calls)
        ]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            # Let the tools run their cleanup; one that ignores cancellation is not waited for.
            await asyncio.wait(tasks, timeout=CANCEL_GRACE)
            raise
        return self.outcome()

    def outcome(self) -> list[ToolResult]:
        """Every call's result; calls that did not finish are ``cancelled``."""
        now = datetime.now(UTC)
        out = []
        for i, call in enumerate(self.calls):
            result = self._results[i]
            if result is None:
                started = self._started[i]
                result = ToolResult(
                    call,
                    error_content("the call was cancelled"),
                    "cancelled",
                    error="cancelled",
                    started_at=started,
                    duration_ms=round((now - started).total_seconds() * 1000),
                )
            out.append(result)
        return out

    async def _run_one(self, index: int) -> None:
        call = self.calls[index]
        self._started[index] = datetime.now(UTC)
        clock = time.perf_counter()
        with turn_span("tool.call", **{"parley.tool": call.name}) as span:
            content, status, error = await self._execute(call)
            span.set_attribute("parley.status", status)
        self._results[index] = ToolResult(
            call,
            content,
            status,
            error=error,
            started_at=self._started[index],
            duration_ms=round((time.perf_counter() - clock) * 1000),
        )

    async def _execute(self, call: ToolCall) -> tuple[str, str, str | None]:
        tool = self.tools.get(call.name)
        if tool is None:
            message = f"unknown tool {call.name!r}"
            if self.tools:
                message += f"; available: {', '.join(self.tools)}"
            return error_content(message), "failed", message
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            message = f"arguments are not valid JSON: {exc}"
            return error_content(message), "failed", message
        if not isinstance(arguments, dict):
            message = "arguments must be a JSON object"
            return error_content(message), "failed", message
        if tool.takes_context:
            arguments["context"] = ToolContext(
                self.context.conversation, self.context.persona, self.context.settings, call.id
            )
        timeout = tool.timeout if tool.timeout is not None else self.timeout
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                value = tool.function(**arguments)
                if inspect.isawaitable(value):
                    value = await value
            return _content(value), "complete", None
        except TimeoutError as exc:
            if not deadline.expired():  # the tool's own TimeoutError
                message = f"{type(exc).__name__}: {exc}"
                return error_content(message), "failed", message
            message = f"the tool {call.name!r} timed out after {timeout:g} s"
            log.warning("%s (conversation %s)", message, self.context.conversation.id)
            return error_content(message), "failed", "timeout"
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.warning("tool %r failed: %s", call.name, message, exc_info=True)
            return error_content(message), "failed", message
