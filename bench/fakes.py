"""Providers with set latency, for benchmarks: an LLM that types, a TTS that talks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from parley.core.providers import LLMChunk, LLMRequest, Usage

REPLY = (
    "Sure, here is a quick plan for your morning. Start with a glass of water and five minutes "
    "of stretching. Then write down the three things that matter most today. Do the hardest one "
    "first, before you open your email. Take a short walk at noon to clear your head. That is "
    "all it takes to begin."
)


class TypingLLM:
    """Streams ``text`` word by word: ``first_token`` seconds, then ``per_token`` per word."""

    name = "typing"

    def __init__(self, *, first_token: float, per_token: float, text: str = REPLY) -> None:
        self.first_token = first_token
        self.per_token = per_token
        self.words = text.split(" ")

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        await asyncio.sleep(self.first_token)
        for i, word in enumerate(self.words):
            if i:
                await asyncio.sleep(self.per_token)
            yield LLMChunk(text=word if i == 0 else " " + word)
        yield LLMChunk(usage=Usage(10, len(self.words)))


class TalkingTTS:
    """First byte after ``first_byte + per_char * len(text)`` seconds, then real-time-ish chunks."""

    name = "talking"
    output_format = "pcm_16000"

    def __init__(self, *, first_byte: float, per_char: float = 0.0005, chunk_every: float = 0.02):
        self.first_byte = first_byte
        self.per_char = per_char
        self.chunk_every = chunk_every

    async def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        await asyncio.sleep(self.first_byte + self.per_char * len(text))
        for _ in range(max(1, len(text) // 20)):
            yield b"\0" * 640
            await asyncio.sleep(self.chunk_every)
