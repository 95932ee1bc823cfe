"""The ``whisper`` STT provider: faster-whisper on this machine, for recordings and live speech.

The model runs in a worker thread, never on the event loop, one transcription at a time (two
at once on two cores only slow each other down). Live sessions end utterances with the Silero
voice activity detector that faster-whisper ships (``live.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from parley.audio import AudioError, decode_to_pcm16
from parley.core.providers import ProviderError, ProviderUnavailable, Transcription
from parley.plugins.local.settings import LocalSTTSettings

__all__ = ["WhisperEngine", "WhisperSTT"]

log = logging.getLogger(__name__)

NAME = "whisper"
RATE = 16000


class WhisperEngine:
    """A loaded faster-whisper model; thread-safe (one transcription at a time)."""

    def __init__(self, model: Path, settings: LocalSTTSettings, *, label: str = "") -> None:
        self.model_path = model
        self.label = label or model.name
        self.settings = settings
        self.load_seconds: float | None = None
        self._model: Any = None
        self._vad: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once the model is loaded."""
        return self._model is not None

    def load(self) -> None:
        """Load the model and the voice activity detector (blocks); idempotent."""
        with self._load_lock:
            if self._model is not None:
                return
            started = time.monotonic()
            from faster_whisper import WhisperModel
            from faster_whisper.vad import get_vad_model

            self._model = WhisperModel(
                str(self.model_path),
                device="cpu",
                compute_type="int8",
                cpu_threads=self.settings.threads,
            )
            self._vad = get_vad_model()
            self.load_seconds = time.monotonic() - started

    def transcribe(self, pcm: bytes, language: str | None) -> Transcription:
        """Transcribe mono PCM16 at 16 kHz (blocks; call it in a thread)."""
        import numpy as np

        self.load()
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        with self._run_lock:
            segments, info = self._model.transcribe(
                samples,
                language=language or None,
                beam_size=1,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcription(text=text, language=info.language, duration=len(samples) / RATE)

    def speech_probabilities(self, pcm: bytes) -> list[float]:
        """Speech probability of each 512-sample (32 ms) window of 16 kHz PCM16 (blocks)."""
        import numpy as np

        self.load()
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        usable = len(samples) - len(samples) % 512
        if not usable:
            return []
        out = self._vad(samples[:usable])
        return [float(p) for p in np.asarray(out).reshape(-1)]


class WhisperSTT:
    """Transcribes recordings and live audio with a local Whisper model."""

    name = NAME

    def __init__(self, settings: LocalSTTSettings, engine: WhisperEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.load_error: str | None = None

    @property
    def model_name(self) -> str:
        """The model's name, for logs."""
        return self.engine.label

    @property
    def ready(self) -> bool:
        """True once the model is loaded."""
        return self.engine.ready

    async def load(self) -> None:
        """Load the model in a thread."""
        try:
            await asyncio.to_thread(self.engine.load)
        except Exception as exc:
            self.load_error = str(exc)
            raise ProviderUnavailable(
                f"the local STT model failed to load: {exc}", provider=NAME
            ) from exc

    def language_for(self, language: str | None) -> str | None:
        """The language to transcribe: ``local.stt.language``, else the conversation's."""
        return self.settings.language or language or None

    async def transcribe_pcm(self, pcm: bytes, *, language: str | None = None) -> Transcription:
        """Transcribe mono PCM16 at 16 kHz in a worker thread."""
        try:
            await self.load()
            return await asyncio.to_thread(self.engine.transcribe, pcm, self.language_for(language))
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"local transcription failed: {exc}", provider=NAME) from exc

    async def transcribe(
        self, audio: bytes, *, mime_type: str | None = None, language: str | None = None
    ) -> Transcription:
        """Transcribe a whole recording (anything PyAV decodes: OGG/Opus, WebM, MP3, WAV...)."""
        try:
            decoded = await asyncio.to_thread(decode_to_pcm16, audio, sample_rate=RATE)
        except AudioError as exc:
            raise ProviderError(f"unreadable audio: {exc}", provider=NAME) from exc
        return await self.transcribe_pcm(decoded.pcm, language=language)

    async def live(
        self,
        *,
        encoding: str | None = "pcm16",
        sample_rate: int | None = 16000,
        language: str | None = None,
    ) -> Any:
        """Open a live session: PCM16 at ``sample_rate`` (utterances ended by the voice activity
        detector), or a container (``webm``, ``ogg``, None) transcribed when finalised."""
        from parley.plugins.local.live import WhisperLiveSession

        session = WhisperLiveSession(
            self, encoding=encoding, sample_rate=sample_rate or RATE, language=language
        )
        session.start()
        return session
