"""A spoken turn through the runtime: Deepgram and ElevenLabs built from settings, HTTP via respx."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from parley import hookimpl
from parley.audio import DecodedAudio, encode_ogg_opus
from parley.core import store
from parley.core.config import SettingsError
from parley.core.events import AudioChunk, AudioCompleted, Sentence, TextDelta, Transcript
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.core.speech import SpeechOptions
from parley.fake_services import deepgram_transcript
from parley.testing import ScriptedLLM, Step, collect

VOICE = {
    "stt": {
        "provider": "deepgram",
        "api_key": "dg-key",
        "base_url": "http://dg.test",
        "max_retries": 0,
    },
    "tts": {
        "provider": "elevenlabs",
        "api_key": "el-key",
        "base_url": "http://el.test",
        "max_retries": 0,
    },
}


async def test_spoken_turn_from_settings(make_settings):
    llm = ScriptedLLM([Step(["It is ", "noon. ", "Anything else?"], delay=0.01)])

    class Plugin:
        @hookimpl
        def register_llm_providers(self, register):
            register("scripted", lambda settings: llm)

    settings = make_settings({**VOICE, "llm": {"provider": "scripted"}})
    pm = make_plugin_manager((), entry_points=False, extra=[("scripted", Plugin())])
    runtime = Runtime(settings, pm)
    ogg = encode_ogg_opus(DecodedAudio(b"\0\0" * 8000, 16000))
    with respx.mock(assert_all_called=True) as mock:
        listen = mock.post("http://dg.test/v1/listen").mock(
            return_value=httpx.Response(200, json=deepgram_transcript("what time is it"))
        )
        speech = mock.post(url__regex=r"http://el\.test/v1/text-to-speech/[^/]+/stream").mock(
            side_effect=lambda request: httpx.Response(
                200, content=b"PCM:" + json.loads(request.content)["text"].encode()
            )
        )
        await runtime.start(adapters=False)
        try:
            assert (runtime.stt.name, runtime.tts.name) == ("deepgram", "elevenlabs")
            user = await store.get_or_create_user("test", "voice")
            conv = (await runtime.engine.open(user.id, "test")).conversation
            events = await collect(
                runtime.engine.turn(
                    conv.id,
                    Inbound(audio=ogg, audio_mime="audio/ogg"),
                    speech=SpeechOptions("pcm_16000"),
                )
            )
            messages = await store.list_messages(conv.id)
        finally:
            await runtime.stop()
    assert listen.calls[0].request.content[:4] == b"OggS"
    assert [e.text for e in events if isinstance(e, Transcript)] == ["what time is it"]
    assert (
        "".join(e.text for e in events if isinstance(e, TextDelta)) == "It is noon. Anything else?"
    )
    assert [s.text for s in events if isinstance(s, Sentence)] == ["It is noon.", "Anything else?"]
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.data for c in chunks] == [b"PCM:It is noon.", b"PCM:Anything else?"]
    assert {c.format for c in chunks} == {"pcm_16000"}
    assert sum(isinstance(e, AudioCompleted) for e in events) == 1
    voices = {call.request.url.path.split("/")[3] for call in speech.calls}
    assert voices == {"JBFqnCBsd6RMkjVDRZzb"}  # the persona has no voice: tts.voice
    user_message, reply = messages[-2:]
    assert user_message.content == "what time is it" and "stt_ms" in user_message.metadata
    assert {
        "stt_ms",
        "llm_first_token_ms",
        "first_sentence_ms",
        "tts_first_byte_ms",
        "first_audio_ms",
    } <= set(reply.metadata)


async def test_missing_keys_turn_voice_off_with_a_notice(make_settings, monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    voice = {"stt": {"provider": "deepgram"}, "tts": {"provider": "elevenlabs"}}
    runtime = Runtime(make_settings(voice), make_plugin_manager((), entry_points=False))
    runtime.build_providers()
    assert runtime.stt is None and runtime.tts is None
    notices = "\n".join(runtime.notices)
    assert "stt.api_key" in notices and "DEEPGRAM_API_KEY" in notices
    assert "tts.api_key" in notices and "ELEVENLABS_API_KEY" in notices


async def test_unknown_voice_provider_is_a_notice(make_settings):
    runtime = Runtime(
        make_settings({"stt": {"provider": "vosk"}}), make_plugin_manager((), entry_points=False)
    )
    runtime.build_providers()
    assert runtime.stt is None
    assert any("stt.provider: no provider named 'vosk'" in n for n in runtime.notices)


async def test_bad_voice_setting_stops_start_up(make_settings):
    settings = make_settings({"stt": {"provider": "deepgram", "endpointing": -5}})
    runtime = Runtime(settings, make_plugin_manager((), entry_points=False))
    with pytest.raises(SettingsError, match=r"^stt\.endpointing: "):
        runtime.build_providers()
