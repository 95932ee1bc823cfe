"""The ``piper`` TTS provider: a sentence in, its speech out, from a piper child process.

Each voice gets one long-lived piper process (``piper.py``), started when first needed; a
persona's ``voice`` picks a piper voice when one of that name exists, else the default voice
speaks. Without piper, ``espeak-ng`` (Debian's package) speaks instead: robotic, but tiny. The
audio is converted to the format asked for (``pcm_<rate>``, ``opus_48000_<kbps>``,
``mp3_<rate>_<kbps>``) with PyAV.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from parley.audio import DecodedAudio, encode_as
from parley.core.providers import ProviderError, ProviderUnavailable
from parley.plugins.local.models import PiperVoice, piper_voice
from parley.plugins.local.piper import PiperProcess, read_wav
from parley.plugins.local.settings import OUTPUT_FORMAT, LocalTTSSettings

__all__ = ["EspeakEngine", "PiperTTS"]

log = logging.getLogger(__name__)

NAME = "piper"
FORMAT = re.compile(OUTPUT_FORMAT)
SPOKEN = re.compile(r"\w")


class EspeakEngine:
    """``espeak-ng --stdout`` per sentence: the fallback when piper is not installed."""

    def __init__(self, binary: str, *, voice: str = "en-us", words_per_minute: int = 165) -> None:
        self.binary = binary
        self.voice = voice
        self.words_per_minute = words_per_minute

    async def speak(self, text: str) -> DecodedAudio:
        """The speech of ``text`` as PCM16."""
        with tempfile.TemporaryDirectory(prefix="parley-espeak-") as folder:
            path = Path(folder) / "out.wav"
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "-v",
                self.voice,
                "-s",
                str(self.words_per_minute),
                "-w",
                str(path),
                "--",
                text,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, error = await process.communicate()
            if process.returncode != 0:
                raise ProviderError(f"espeak-ng failed: {error.decode()[:200]}", provider=NAME)
            return read_wav(path)


class PiperTTS:
    """Speaks with piper voices in child processes (or espeak-ng when piper is missing)."""

    name = NAME
    first_token_timeout = 15.0
    """The failover chain's watchdogs for a sentence (unless set in its settings): a child process
    on a busy CPU may take seconds to its first audio."""
    stall_timeout = 15.0

    def __init__(
        self,
        settings: LocalTTSSettings,
        *,
        command: list[str] | None,
        voice: PiperVoice | None,
        espeak: EspeakEngine | None = None,
    ) -> None:
        if voice is None and espeak is None:
            raise ValueError("a piper voice or espeak-ng is needed")
        self.settings = settings
        self.output_format = settings.output_format
        self.command = command
        self.default_voice = voice
        self.espeak = espeak
        self._processes: dict[str, PiperProcess] = {}
        self._unknown: set[str] = set()
        self.load_error: str | None = None

    @property
    def engine(self) -> str:
        """``piper`` or ``espeak-ng``."""
        return "piper" if self.command and self.default_voice else "espeak-ng"

    @property
    def model_name(self) -> str:
        """The default voice."""
        return self.default_voice.name if self.default_voice else "espeak-ng en-us"

    def process_for(self, voice: str | None) -> PiperProcess | None:
        """The piper process of ``voice`` (a piper voice name or path), else of the default."""
        if not self.command or self.default_voice is None:
            return None
        chosen = self.default_voice
        if voice and voice != chosen.name:
            found = piper_voice(voice, self.settings.voices_dir)
            if found is not None:
                chosen = found
            elif voice not in self._unknown:
                self._unknown.add(voice)
                log.debug("no piper voice %r: the default voice %s speaks", voice, chosen.name)
        process = self._processes.get(chosen.name)
        if process is None:
            process = PiperProcess(self.command, chosen, length_scale=self.settings.length_scale)
            self._processes[chosen.name] = process
        return process

    @property
    def ready(self) -> bool:
        """True once the default voice's process runs (always true for espeak-ng)."""
        process = self.process_for(None)
        return process is None or process.running

    async def load(self) -> None:
        """Start the default voice's process and speak one word so its model is loaded."""
        process = self.process_for(None)
        if process is not None:
            try:
                await asyncio.to_thread(process.synthesize, "Ready.")
            except Exception as exc:
                self.load_error = str(exc)
                raise ProviderUnavailable(f"piper failed to start: {exc}", provider=NAME) from exc

    async def speak(self, text: str, voice: str | None = None) -> DecodedAudio:
        """The speech of one line of ``text`` as PCM16 at the voice's rate."""
        process = self.process_for(voice)
        if process is None:
            assert self.espeak is not None
            return await self.espeak.speak(text)
        try:
            path = await asyncio.wrap_future(process.submit(text))
        except RuntimeError as exc:
            raise ProviderUnavailable(str(exc), provider=NAME) from exc
        try:
            return await asyncio.to_thread(read_wav, path)
        finally:
            path.unlink(missing_ok=True)

    async def synthesize(
        self, text: str, *, voice: str | None = None, output_format: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the speech of ``text`` in ``output_format`` (one chunk per sentence)."""
        fmt = output_format or self.output_format
        if not FORMAT.match(fmt):
            raise ProviderError(f"the piper provider cannot produce {fmt!r}", provider=NAME)
        line = " ".join(text.split())
        if not SPOKEN.search(line):
            return
        audio = await self.speak(line, voice)
        if not audio.pcm:
            return
        yield await asyncio.to_thread(encode_as, audio, fmt)

    def stop(self) -> None:
        """Stop the child processes (blocks; a later sentence starts them again)."""
        processes, self._processes = list(self._processes.values()), {}
        for process in processes:
            process.stop()

    async def aclose(self) -> None:
        """Stop the child processes."""
        await asyncio.to_thread(self.stop)
