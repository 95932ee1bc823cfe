"""Audio conversion with PyAV, for adapters and providers: PCM16 <-> OGG/Opus, anything -> OGG/Opus.

Decoding untrusted audio is bounded: input size (``max_bytes``) and decoded duration
(``max_seconds``) are capped, and a corrupt file raises :class:`AudioError`, never crashes.
Formats are named like ElevenLabs' ``output_format``: ``pcm_16000``, ``mp3_44100_128``,
``opus_48000_64``; raw PCM is mono signed 16-bit little-endian.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AudioError",
    "DecodedAudio",
    "decode_to_pcm16",
    "encode_as",
    "encode_ogg_opus",
    "is_ogg",
    "pcm_rate",
    "to_ogg_opus",
]

MAX_BYTES = 20 * 1024 * 1024
MAX_SECONDS = 600.0


class AudioError(ValueError):
    """Audio that cannot be used: corrupt, empty, too large or too long."""


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """Mono PCM16 samples at ``sample_rate``."""

    pcm: bytes
    sample_rate: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.pcm) / 2 / self.sample_rate


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("audio conversion needs PyAV: pip install 'parley[voice]'") from exc
    return av


def pcm_rate(output_format: str) -> int | None:
    """The sample rate of a raw PCM format name (``pcm_16000`` -> 16000), else None."""
    kind, _, rest = output_format.partition("_")
    if kind != "pcm":
        return None
    try:
        return int(rest.split("_")[0])
    except ValueError:
        return None


def is_ogg(data: bytes) -> bool:
    """True when ``data`` starts with the Ogg page magic."""
    return data[:4] == b"OggS"


def decode_to_pcm16(
    data: bytes,
    *,
    sample_rate: int = 16000,
    source_format: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_seconds: float = MAX_SECONDS,
) -> DecodedAudio:
    """Decode any container PyAV reads (or raw PCM named by ``source_format``) to mono PCM16."""
    if not data:
        raise AudioError("empty audio")
    if len(data) > max_bytes:
        raise AudioError(f"audio too large: {len(data)} bytes (limit {max_bytes})")
    rate = pcm_rate(source_format) if source_format else None
    if rate is not None:
        pcm = data[: len(data) - len(data) % 2]
        decoded = DecodedAudio(pcm, rate)
        if decoded.duration > max_seconds:
            raise AudioError(f"audio too long: {decoded.duration:.0f} s (limit {max_seconds:.0f})")
        if rate == sample_rate:
            return decoded
        return _resample_pcm(pcm, rate, sample_rate)
    av = _av()
    out = bytearray()
    limit = int(max_seconds * sample_rate * 2)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("no audio stream in the file")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            for frame in container.decode(audio=0):
                for converted in resampler.resample(frame):
                    out += _plane_bytes(converted)
                if len(out) > limit:
                    raise AudioError(f"audio too long (limit {max_seconds:.0f} s)")
            for converted in resampler.resample(None):
                out += _plane_bytes(converted)
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise AudioError(f"could not decode audio: {exc}") from None
    if not out:
        raise AudioError("no audio samples in the file")
    return DecodedAudio(bytes(out), sample_rate)


def _plane_bytes(frame: Any) -> bytes:
    # Plane buffers are padded: keep exactly samples * 2 bytes (mono s16).
    return bytes(frame.planes[0])[: frame.samples * 2]


def _resample_pcm(pcm: bytes, rate: int, target: int) -> DecodedAudio:
    av = _av()
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=target)
    out = bytearray()
    for converted in [*resampler.resample(frame), *resampler.resample(None)]:
        out += _plane_bytes(converted)
    return DecodedAudio(bytes(out), target)


def encode_ogg_opus(audio: DecodedAudio, *, bitrate: int = 32000) -> bytes:
    """Encode mono PCM16 as an OGG/Opus file (48 kHz), the format of voice notes."""
    return _encode(audio, "ogg", "libopus", "s16", 48000, bitrate)


def _encode(
    audio: DecodedAudio,
    container_format: str,
    codec: str,
    sample_format: str,
    rate: int,
    bitrate: int,
) -> bytes:
    """Encode mono PCM16 with ``codec`` at ``rate`` into a ``container_format`` file."""
    av = _av()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(audio.pcm) // 2)
        frame.planes[0].update(audio.pcm)
        frame.sample_rate = audio.sample_rate
        frame.pts = None
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            converted.pts = None
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def to_ogg_opus(
    data: bytes,
    *,
    source_format: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_seconds: float = MAX_SECONDS,
) -> tuple[bytes, float]:
    """Convert audio (MP3, WAV, raw ``pcm_*``...) to OGG/Opus; return it with its duration."""
    decoded = decode_to_pcm16(
        data,
        sample_rate=48000,
        source_format=source_format,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
    )
    return encode_ogg_opus(decoded), decoded.duration


def encode_as(audio: DecodedAudio, output_format: str) -> bytes:
    """Encode mono PCM16 as ``output_format``: ``pcm_<rate>`` (resampled if needed),
    ``opus_48000_<kbps>`` (OGG/Opus) or ``mp3_<rate>_<kbps>``; ValueError for anything else."""
    rate = pcm_rate(output_format)
    if rate is not None:
        if rate == audio.sample_rate:
            return audio.pcm
        return _resample_pcm(audio.pcm, audio.sample_rate, rate).pcm
    kind, _, rest = output_format.partition("_")
    parts = rest.split("_")
    if kind == "opus" and len(parts) == 2 and parts[1].isdigit():
        return encode_ogg_opus(audio, bitrate=int(parts[1]) * 1000)
    if kind == "mp3" and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return _encode(audio, "mp3", "libmp3lame", "s16p", int(parts[0]), int(parts[1]) * 1000)
    raise ValueError(f"cannot encode audio as {output_format!r}")
