"""Audio conversion with real encoders (PyAV's bundled FFmpeg)."""

from __future__ import annotations

import io
import itertools
import math
import struct

import av
import pytest

from parley.audio import AudioError, DecodedAudio, decode_to_pcm16, encode_ogg_opus, to_ogg_opus


def sine(freq: float = 440.0, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """Mono PCM16 sine wave."""
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h", *(int(12000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def dominant_frequency(pcm: bytes, rate: int) -> float:
    """Zero-crossing estimate of a clean sine's frequency."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return crossings / (len(samples) / rate)


def mp3_of(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_pcm_to_ogg_opus_round_trip():
    ogg = encode_ogg_opus(DecodedAudio(sine(seconds=2.0), 16000))
    assert ogg[:4] == b"OggS" and b"OpusHead" in ogg[:200]
    with av.open(io.BytesIO(ogg)) as container:
        assert container.streams.audio[0].codec_context.name in ("opus", "libopus")
    back = decode_to_pcm16(ogg, sample_rate=16000)
    assert abs(back.duration - 2.0) < 0.1
    assert abs(dominant_frequency(back.pcm, 16000) - 440) < 10


def test_raw_pcm_source_format_and_resampling():
    ogg, duration = to_ogg_opus(sine(seconds=1.0, rate=24000), source_format="pcm_24000")
    assert ogg[:4] == b"OggS" and abs(duration - 1.0) < 0.01
    back = decode_to_pcm16(ogg, sample_rate=16000)
    assert abs(dominant_frequency(back.pcm, 16000) - 440) < 10


def test_mp3_to_ogg_opus():
    mp3 = mp3_of(sine(seconds=1.5, rate=44100), 44100)
    ogg, duration = to_ogg_opus(mp3)
    assert ogg[:4] == b"OggS" and abs(duration - 1.5) < 0.15


def test_corrupt_audio_is_a_clear_error():
    with pytest.raises(AudioError, match=r"could not decode|no audio"):
        decode_to_pcm16(b"this is not audio at all" * 100)
    with pytest.raises(AudioError, match="empty"):
        decode_to_pcm16(b"")


def test_caps_on_size_and_duration():
    ogg = encode_ogg_opus(DecodedAudio(sine(seconds=3.0), 16000))
    with pytest.raises(AudioError, match="too large"):
        decode_to_pcm16(ogg, max_bytes=100)
    with pytest.raises(AudioError, match="too long"):
        decode_to_pcm16(ogg, max_seconds=1.0)
    with pytest.raises(AudioError, match="too long"):
        decode_to_pcm16(sine(seconds=3.0), source_format="pcm_16000", max_seconds=1.0)
