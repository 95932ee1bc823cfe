"""The ``echo`` LLM provider: offline, deterministic replies for trying Parley and for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from parley.core.providers import LLMChunk, LLMRequest, Usage

if TYPE_CHECKING:
    from parley.core.config import LLMSettings

__all__ = ["EchoLLM", "message_text"]

GREETING = "Hello!"


def message_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part.get("text") or ""
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return " ".join(part for part in parts if part)
    return ""


class EchoLLM:
    """Replies "You said: <the last user message>." word by word; "Hello!" when nobody spoke."""

    name = "echo"

    def __init__(self, settings: LLMSettings | None = None, *, delay: float = 0.0) -> None:
        self.settings = settings
        self.delay = delay

    def reply(self, messages: list[dict[str, Any]]) -> str:
        """The full reply to ``messages``."""
        for message in reversed(messages):
            if message.get("role") == "user":
                words = message_text(message.get("content")).split()
                if words:
                    text = " ".join(words)
                    return f"You said: {text.rstrip('.!?…') or text}."
                break
        return GREETING

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Yield the reply one word per chunk (``delay`` seconds apart), then usage and "stop"."""
        reply = self.reply(request.messages)
        words = reply.split(" ")
        for position, word in enumerate(words):
            if position and self.delay:
                await asyncio.sleep(self.delay)
            last = position == len(words) - 1
            yield LLMChunk(text=word if last else word + " ")
        prompt_tokens = sum(len(message_text(m.get("content")).split()) for m in request.messages)
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words))
        yield LLMChunk(usage=usage, finish_reason="stop")
