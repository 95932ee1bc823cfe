"""Speech for a streaming reply: sentences are cut as text arrives and spoken while the LLM writes.

:func:`speak` wraps one responder's event stream. Each complete sentence becomes its own TTS
request, started at once (at most ``SpeechOptions.concurrency`` at a time); audio leaves strictly
in sentence order, tagged with the message id. If TTS fails, the text still arrives and an
``ErrorEvent("tts_failed")`` says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass

from parley.core.events import (
    AudioChunk,
    AudioCompleted,
    ErrorEvent,
    Event,
    MessageCompleted,
    MessageStarted,
    Sentence,
    TextDelta,
)
from parley.core.providers import TTSProvider

__all__ = ["SentenceSplitter", "SpeechOptions", "speak"]

log = logging.getLogger(__name__)

_END = re.compile(r"[.!?…]+[\"')\]]*\s+")
_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "prof", "st", "vs", "etc", "e.g", "i.e", "u.s", "jr"}


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """Asked for by an adapter: speak replies in ``output_format`` (ElevenLabs format names)."""

    output_format: str = "mp3_44100_128"
    """``pcm_16000``, ``pcm_24000``, ``mp3_44100_128``, ``opus_48000_64``..."""
    voice: str | None = None
    """Voice id overriding the persona's and ``tts.voice``."""
    concurrency: int = 3
    """How many sentences may be synthesised at once."""


class SentenceSplitter:
    """Cuts sentences from streamed text; ``feed`` returns the sentences completed so far."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return complete sentences."""
        self._buffer += text
        sentences = []
        start = 0
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            last_word = candidate.rstrip(".!?…\"')] ").rsplit(" ", 1)[-1].lower()
            if match.group().startswith(".") and last_word in _ABBREVIATIONS:
                continue
            if candidate:
                sentences.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> list[str]:
        """The rest of the text, once the stream has ended."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []


async def speak(
    events: AsyncIterator[Event],
    *,
    tts: TTSProvider,
    voice: str | None,
    options: SpeechOptions,
) -> AsyncIterator[Event]:
    """Pass ``events`` through, adding Sentence, AudioChunk and AudioCompleted events."""
    out: asyncio.Queue[Event | None] = asyncio.Queue()
    pump = asyncio.create_task(_pump(events, out, tts, voice or options.voice, options))
    try:
        while (event := await out.get()) is not None:
            yield event
        await pump
    finally:
        if not pump.done():
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump
        with suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


async def _pump(
    events: AsyncIterator[Event],
    out: asyncio.Queue[Event | None],
    tts: TTSProvider,
    voice: str | None,
    options: SpeechOptions,
) -> None:
    limit = asyncio.Semaphore(max(1, options.concurrency))
    splitter = SentenceSplitter()
    message_id: str | None = None
    character_id: str | None = None
    jobs: asyncio.Queue[tuple[Sentence, asyncio.Task[list[bytes]]] | None] = asyncio.Queue()
    failed = asyncio.Event()
    sender: asyncio.Task[None] | None = None

    async def synthesise(text: str) -> list[bytes]:
        async with limit:
            stream = tts.synthesize(text, voice=voice, output_format=options.output_format)
            return [chunk async for chunk in stream if chunk]

    async def send_audio() -> None:
        while (job := await jobs.get()) is not None:
            sentence, task = job
            try:
                chunks = await task
            except Exception as exc:
                log.warning("TTS failed for message %s: %s", sentence.message_id, exc)
                if not failed.is_set():
                    failed.set()
                    await out.put(ErrorEvent("tts_failed", f"speech synthesis failed: {exc}", True))
                continue
            for index, data in enumerate(chunks):
                await out.put(
                    AudioChunk(
                        sentence.message_id,
                        sentence.index,
                        index,
                        data,
                        options.output_format,
                        sentence.character_id,
                    )
                )

    index = 0

    async def queue_sentences(texts: list[str]) -> None:
        nonlocal index
        for text in texts:
            assert message_id is not None
            sentence = Sentence(message_id, index, text, character_id)
            index += 1
            await out.put(sentence)
            await jobs.put((sentence, asyncio.create_task(synthesise(text))))

    try:
        async for event in events:
            if isinstance(event, MessageStarted):
                message_id, character_id = event.message_id, event.character_id
                sender = asyncio.create_task(send_audio())
            elif isinstance(event, TextDelta):
                await out.put(event)
                await queue_sentences(splitter.feed(event.text))
                continue
            elif isinstance(event, MessageCompleted) and message_id is not None:
                await queue_sentences(splitter.flush())
                await out.put(event)
                await jobs.put(None)
                if sender is not None:
                    await sender
                    sender = None
                await out.put(AudioCompleted(message_id, character_id))
                continue
            await out.put(event)
    finally:
        if sender is not None and not sender.done():
            sender.cancel()
            with suppress(asyncio.CancelledError):
                await sender
        while not jobs.empty():
            job = jobs.get_nowait()
            if job is not None and not job[1].done():
                job[1].cancel()
        await out.put(None)
