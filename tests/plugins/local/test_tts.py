"""The piper provider: formats, per-persona voices, a dead child process, the espeak-ng fallback."""

from __future__ import annotations

import shutil

import pytest

from parley.audio import decode_to_pcm16, pcm_rate
from parley.core.providers import ProviderError
from parley.plugins.local.models import espeak_binary, piper_command, piper_voice
from parley.plugins.local.settings import LocalTTSSettings
from parley.plugins.local.tts import EspeakEngine, PiperTTS

from .test_models import word_error_rate

TEXT = "Good morning, how can I help you today?"


async def spoken(tts, text=TEXT, **kwargs) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text, **kwargs)])


@pytest.mark.parametrize("fmt", ["pcm_16000", "pcm_24000", "opus_48000_64", "mp3_44100_128"])
async def test_every_format_the_adapters_ask_for(piper_tts, fmt):
    audio = await spoken(piper_tts, output_format=fmt)
    decoded = decode_to_pcm16(audio, source_format=fmt if pcm_rate(fmt) else None)
    assert 1.0 < decoded.duration < 4.0
    if fmt.startswith("opus"):
        assert audio[:4] == b"OggS"


async def test_nothing_to_say_is_no_audio_and_a_bad_format_is_an_error(piper_tts):
    assert await spoken(piper_tts, text=" ... ") == b""
    with pytest.raises(ProviderError, match="cannot produce 'wav'"):
        await spoken(piper_tts, output_format="wav")


async def test_a_persona_voice_names_a_piper_voice(tmp_path, whisper_stt):
    """A voice found in local.tts.voices_dir speaks for the persona naming it; a voice id of
    another provider (an ElevenLabs id in a persona) falls back to the default voice."""
    shipped = piper_voice()
    shutil.copy(shipped.model, tmp_path / "en_US-slow-medium.onnx")
    shutil.copy(shipped.config, tmp_path / "en_US-slow-medium.onnx.json")
    settings = LocalTTSSettings(voices_dir=str(tmp_path), output_format="pcm_16000")
    tts = PiperTTS(settings, command=piper_command(), voice=shipped)
    try:
        assert tts.process_for("21m00Tcm4TlvDq8ikWAM") is tts.process_for(None)
        slow = tts.process_for("en_US-slow-medium")
        assert slow is not tts.process_for(None) and slow.voice.name == "en_US-slow-medium"
        audio = await spoken(tts, voice="en_US-slow-medium")
        heard = await whisper_stt.transcribe_pcm(audio)
        assert word_error_rate(TEXT, heard.text) < 0.2, heard.text
        assert slow.running and not tts.process_for(None).running
    finally:
        await tts.aclose()
    assert not slow.running


async def test_a_dead_piper_process_is_restarted(piper_tts):
    process = piper_tts.process_for(None)
    assert await spoken(piper_tts)
    process._process.kill()
    process._process.wait()
    assert await spoken(piper_tts)  # a new child process answers


async def test_espeak_speaks_when_piper_is_missing(whisper_stt):
    binary = espeak_binary()
    assert binary, "espeak-ng is installed by `make espeak` (make test does it)"
    tts = PiperTTS(LocalTTSSettings(), command=None, voice=None, espeak=EspeakEngine(binary))
    assert tts.engine == "espeak-ng"
    audio = await spoken(
        tts, text="The quick brown fox jumps over the lazy dog.", output_format="pcm_16000"
    )
    heard = await whisper_stt.transcribe_pcm(audio)
    assert word_error_rate("The quick brown fox jumps over the lazy dog.", heard.text) < 0.35, (
        heard.text
    )
