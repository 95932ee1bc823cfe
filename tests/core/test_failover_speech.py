"""Speech failover through the runtime: Deepgram and ElevenLabs built from settings, HTTP via respx."""

from __future__ import annotations

import json

import httpx
import respx

from parley import hookimpl
from parley.audio import DecodedAudio, encode_ogg_opus
from parley.core import store
from parley.core.events import AudioChunk, ErrorEvent, Sentence, Transcript
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.core.speech import SpeechOptions
from parley.core.telemetry import FallbackTaken
from parley.fake_services import deepgram_transcript
from parley.testing import ScriptedLLM, Step, collect

VOICE = {
    "stt": {
        "provider": "deepgram",
        "api_key": "dg-key",
        "base_url": "http://dg-one.test",
        "fallbacks": [
            {"provider": "deepgram", "api_key": "dg-2", "base_url": "http://dg-two.test"}
        ],
    },
    "tts": {
        "provider": "elevenlabs",
        "api_key": "el-key",
        "base_url": "http://el-one.test",
        "voice": "primary-voice",
        "fallbacks": [
            {
                "provider": "elevenlabs",
                "label": "backup-voice",
                "api_key": "el-2",
                "base_url": "http://el-two.test",
                "voice": "backup-voice",
            }
        ],
    },
    "llm": {"provider": "scripted"},
}


def spoken(request: httpx.Request) -> httpx.Response:
    voice = request.url.path.split("/")[3]
    return httpx.Response(200, content=f"{voice}:{json.loads(request.content)['text']}".encode())


async def test_a_failed_recording_goes_to_the_next_stt_and_a_failed_sentence_to_the_next_tts(
    make_settings,
):
    llm = ScriptedLLM([Step(["First one. ", "Second one. ", "Third one."])])

    class Plugin:
        @hookimpl
        def register_llm_providers(self, register):
            register("scripted", lambda settings: llm)

    pm = make_plugin_manager((), entry_points=False, extra=[("scripted", Plugin())])
    runtime = Runtime(make_settings(VOICE), pm)
    records: list = []
    runtime.telemetry.subscribe(records.append)
    ogg = encode_ogg_opus(DecodedAudio(b"\0\0" * 8000, 16000))
    primary_texts: list[str] = []

    def primary_tts(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        primary_texts.append(text)
        if text == "Second one.":
            return httpx.Response(503, json={"detail": {"message": "overloaded"}})
        return spoken(request)

    with respx.mock(assert_all_called=True) as mock:
        down = mock.post("http://dg-one.test/v1/listen").mock(return_value=httpx.Response(502))
        up = mock.post("http://dg-two.test/v1/listen").mock(
            return_value=httpx.Response(200, json=deepgram_transcript("hello there"))
        )
        mock.post(url__regex=r"http://el-one\.test/v1/text-to-speech/[^/]+/stream").mock(
            side_effect=primary_tts
        )
        backup = mock.post(url__regex=r"http://el-two\.test/v1/text-to-speech/[^/]+/stream").mock(
            side_effect=spoken
        )
        await runtime.start(adapters=False)
        try:
            user = await store.get_or_create_user("test", "voice")
            conversation = (await runtime.engine.open(user.id, "test")).conversation
            inbound = Inbound(audio=ogg, audio_mime="audio/ogg")
            events = await collect(
                runtime.engine.turn(conversation.id, inbound, speech=SpeechOptions("pcm_16000"))
            )
            messages = await store.list_messages(conversation.id)
        finally:
            await runtime.stop()
    assert (down.call_count, up.call_count) == (1, 1)  # no retries before the fallback
    assert [e.text for e in events if isinstance(e, Transcript)] == ["hello there"]
    assert [s.text for s in events if isinstance(s, Sentence)] == [
        "First one.",
        "Second one.",
        "Third one.",
    ]
    # Audio stays in sentence order; only the failed sentence came from the fallback, in its
    # own voice (the primary's voice id means nothing to another account).
    audio = [(c.sentence_index, c.data) for c in events if isinstance(c, AudioChunk)]
    assert audio == [
        (0, b"primary-voice:First one."),
        (1, b"backup-voice:Second one."),
        (2, b"primary-voice:Third one."),
    ]
    assert backup.call_count == 1
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    user_message, reply = messages[-2:]
    assert user_message.metadata["stt_provider"] == "deepgram#2"
    assert reply.metadata["tts_providers"] == ["elevenlabs", "backup-voice"]
    fallbacks = [(r.kind, r.to_provider) for r in records if isinstance(r, FallbackTaken)]
    assert fallbacks == [("stt", "deepgram#2"), ("tts", "backup-voice")]
