"""Speech for a streaming reply: sentences are cut as text arrives and spoken while the LLM writes.

:func:`speak` wraps a responder's event stream (MessageStarted, TextDelta*, MessageCompleted) and
adds, per message:

- ``Sentence(message_id, index, text)`` the moment a sentence is complete (cleaned for speech by
  :mod:`parley.core.sentences`);
- one TTS request per sentence, started at once (at most ``SpeechOptions.concurrency`` run at a
  time, in sentence order);
- ``AudioChunk(message_id, sentence_index, chunk_index, data, format)`` strictly in order: the
  current sentence's bytes pass through as they arrive, later sentences wait their turn;
- ``AudioCompleted(message_id)`` after the message's last chunk, always, even when TTS failed.

If TTS fails the text goes on: one ``ErrorEvent("tts_failed")`` and no more audio for that message.
Closing the generator (barge-in, disconnect) cancels the LLM stream and every TTS request at once;
the message is stored as ``interrupted``, also when only its audio was still playing.

Timings (milliseconds from ``started_at``, the end of the user's turn) are merged into the stored
message's metadata: ``first_sentence_ms``, ``tts_first_byte_ms``, ``first_audio_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from parley.core import store
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
from parley.core.providers import ProviderError, TTSProvider
from parley.core.sentences import SentenceSplitter, SpeechText
from parley.core.telemetry import provider_sink

__all__ = ["DEFAULT_FORMAT", "SentenceSplitter", "SpeechOptions", "speak"]

log = logging.getLogger(__name__)

DEFAULT_FORMAT = "mp3_44100_128"


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """Asked for by an adapter: speak each reply, in ``output_format``."""

    output_format: str | None = None
    """ElevenLabs format names: ``pcm_16000``, ``pcm_24000``, ``mp3_44100_128``,
    ``opus_48000_64``... None: the TTS provider's default (``tts.output_format``)."""
    voice: str | None = None
    """Voice for personas without their own ``voice`` (wins over ``tts.voice``)."""
    concurrency: int = 3
    """How many sentences may be synthesised at once."""
    max_sentence_chars: int = 250
    """Longer sentences are cut at a clause boundary."""


class _End:
    """A sentence's audio is complete."""


_END = _End()


@dataclass(slots=True)
class _Failed:
    error: BaseException


@dataclass(slots=True)
class _Spoken:
    """Internal marker: every chunk of one sentence has been handed on."""

    message_id: str


@dataclass(slots=True)
class _Job:
    sentence: Sentence
    chunks: asyncio.Queue[bytes | _End | _Failed] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


_Item = Event | _Spoken | None


class _Speaker:
    """Speaks one message: one TTS task per sentence, one sender forwarding audio in order."""

    def __init__(
        self,
        started: MessageStarted,
        *,
        tts: TTSProvider,
        voice: str | None,
        output_format: str,
        limit: asyncio.Semaphore,
        out: asyncio.Queue[_Item],
        clock: _Clock,
        max_sentence_chars: int,
    ) -> None:
        self.text = SpeechText(SentenceSplitter(max_chars=max_sentence_chars))
        self.message_id = started.message_id
        self.character_id = started.character_id
        self.tts = tts
        self.voice = voice
        self.format = output_format
        self.limit = limit
        self.out = out
        self.clock = clock
        self.timing: dict[str, Any] = {}
        self.spoken = 0
        self.sentences = 0
        self.failed = False
        self.providers: list[str] = []
        """Which TTS providers spoke (a failover chain reports through ``provider_sink``)."""
        self._jobs: list[_Job] = []
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send())

    def add(self, text: str) -> Sentence:
        """A sentence is complete: start its TTS request; the Sentence event to announce.

        The request's task is created before any event is handed on, so it runs before the
        consumer wakes up to render the text (the audio is what waits on it)."""
        sentence = Sentence(self.message_id, self.sentences, text, self.character_id)
        self.sentences += 1
        self.timing.setdefault("first_sentence_ms", self.clock.ms())
        if not self.failed:
            job = _Job(sentence)
            job.task = asyncio.create_task(self._synthesise(job))
            self._jobs.append(job)
            self._queue.put_nowait(job)
        return sentence

    async def _synthesise(self, job: _Job) -> None:
        provider_sink.set(self._spoke_with)  # this task's own context
        async with self.limit:
            if self.failed:
                job.chunks.put_nowait(_END)
                return
            stream = None
            try:
                stream = self.tts.synthesize(
                    job.sentence.text, voice=self.voice, output_format=self.format
                )
                async for data in stream:
                    if data:
                        self.timing.setdefault("tts_first_byte_ms", self.clock.ms())
                        job.chunks.put_nowait(bytes(data))
            except Exception as exc:
                job.chunks.put_nowait(_Failed(exc))
                return
            finally:
                aclose = getattr(stream, "aclose", None) if stream is not None else None
                if aclose is not None:
                    with suppress(Exception):
                        await aclose()
        job.chunks.put_nowait(_END)

    def _spoke_with(self, provider: str) -> None:
        if provider not in self.providers:
            self.providers.append(provider)
            self.timing["tts_providers"] = self.providers

    async def _send(self) -> None:
        while (job := await self._queue.get()) is not None:
            if self.failed:
                continue
            index = 0
            while not isinstance(item := await job.chunks.get(), _End):
                if isinstance(item, _Failed):
                    self._fail(item.error)
                    break
                sentence = job.sentence
                self.out.put_nowait(
                    AudioChunk(
                        self.message_id,
                        sentence.index,
                        index,
                        item,
                        self.format,
                        self.character_id,
                    )
                )
                index += 1
            else:
                self.out.put_nowait(_Spoken(self.message_id))

    def _fail(self, error: BaseException) -> None:
        self.failed = True
        for job in self._jobs:
            if job.task is not None and not job.task.done():
                job.task.cancel()
        if isinstance(error, ProviderError):
            message, retryable, code = error.message, error.retryable, error.code
            log.warning("TTS failed for message %s: %s", self.message_id, message)
        else:
            log.error("TTS failed for message %s", self.message_id, exc_info=error)
            message, retryable, code = f"{type(error).__name__}: {error}", False, "error"
        self.timing["tts_error"] = code
        self.out.put_nowait(
            ErrorEvent("tts_failed", f"speech synthesis failed: {message}", retryable)
        )

    async def finish(self) -> None:
        """The text is complete: wait until every sentence's audio has been handed on."""
        self._queue.put_nowait(None)
        await self._sender
        self.out.put_nowait(AudioCompleted(self.message_id, self.character_id))

    async def cancel(self) -> None:
        """Stop at once: cancel the sender and every TTS request, and wait for them."""
        tasks = [self._sender, *(job.task for job in self._jobs if job.task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Clock:
    def __init__(self, started_at: float | None) -> None:
        self.started_at = time.perf_counter() if started_at is None else started_at

    def ms(self) -> int:
        return round((time.perf_counter() - self.started_at) * 1000)


@dataclass(slots=True)
class _State:
    speakers: dict[str, _Speaker] = field(default_factory=dict)
    """Messages whose audio has not been completely handed on, by message id."""


async def speak(
    events: AsyncIterator[Event],
    *,
    tts: TTSProvider,
    voice: str | None = None,
    options: SpeechOptions | None = None,
    started_at: float | None = None,
) -> AsyncIterator[Event]:
    """Pass ``events`` through, adding Sentence, AudioChunk and AudioCompleted events.

    ``voice`` is the persona's voice (None: ``options.voice``, then the provider's default).
    ``started_at`` (``time.perf_counter()``) is the end of the user's turn, for the timings.
    """
    options = options or SpeechOptions()
    output_format = options.output_format or getattr(tts, "output_format", None) or DEFAULT_FORMAT
    out: asyncio.Queue[_Item] = asyncio.Queue()
    state = _State()
    clock = _Clock(started_at)
    limit = asyncio.Semaphore(max(1, options.concurrency))

    def new_speaker(started: MessageStarted) -> _Speaker:
        return _Speaker(
            started,
            tts=tts,
            voice=voice or options.voice,
            output_format=output_format,
            limit=limit,
            out=out,
            clock=clock,
            max_sentence_chars=options.max_sentence_chars,
        )

    pump = asyncio.create_task(_pump(events, out, state, new_speaker))
    try:
        while (item := await out.get()) is not None:
            speaker = state.speakers.get(getattr(item, "message_id", ""))
            if isinstance(item, _Spoken):
                if speaker is not None:
                    speaker.spoken += 1
                continue
            if isinstance(item, AudioChunk) and speaker is not None:
                speaker.timing.setdefault("first_audio_ms", clock.ms())
            elif isinstance(item, AudioCompleted) and speaker is not None:
                del state.speakers[speaker.message_id]
                await _record(speaker, interrupted=False)
            yield item
        await pump
    finally:
        if not pump.done():
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump
        with suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
        for speaker in state.speakers.values():
            await asyncio.shield(_record(speaker, interrupted=True))


async def _pump(
    events: AsyncIterator[Event],
    out: asyncio.Queue[_Item],
    state: _State,
    new_speaker: Callable[[MessageStarted], _Speaker],
) -> None:
    """Read the reply's events, cut sentences, drive the speakers; ``None`` into ``out`` at the end."""
    try:
        async for event in events:
            speaker = state.speakers.get(getattr(event, "message_id", ""))
            if isinstance(event, MessageStarted):
                out.put_nowait(event)
                state.speakers[event.message_id] = new_speaker(event)
            elif isinstance(event, TextDelta) and speaker is not None:
                # TTS requests first, then the events: TextDelta, then the Sentences it completed.
                sentences = [speaker.add(text) for text in speaker.text.feed(event.text)]
                for item in (event, *sentences):
                    out.put_nowait(item)
            elif isinstance(event, MessageCompleted) and speaker is not None:
                if event.status == "complete":
                    for text in speaker.text.flush():
                        out.put_nowait(speaker.add(text))
                out.put_nowait(event)
                await speaker.finish()
            else:
                out.put_nowait(event)
    finally:
        for speaker in list(state.speakers.values()):
            await speaker.cancel()
        out.put_nowait(None)


async def _record(speaker: _Speaker, *, interrupted: bool) -> None:
    """Merge the speech timings into the stored message; mark it interrupted if it was cut."""
    try:
        stored = await store.get_message(speaker.message_id)
        if stored is None:
            return
        metadata = {**stored.metadata, **speaker.timing}
        fields: dict[str, Any] = {"metadata": metadata}
        if interrupted:
            metadata["sentences_spoken"] = speaker.spoken
            if stored.status in ("complete", "pending"):
                fields["status"] = "interrupted"
        await store.update_message(speaker.message_id, **fields)
    except Exception:
        log.exception("could not store speech timings of message %s", speaker.message_id)
