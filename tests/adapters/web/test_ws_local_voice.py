"""A spoken turn over ``/ws`` on the local models: speech in, transcript, reply, speech out."""

from __future__ import annotations

import asyncio
import json

from parley.adapters.web.frames import parse_audio_frame
from parley.core import store
from parley.core.config import LLMSettings
from parley.plugins.local.llm import LocalLLM
from parley.plugins.local.settings import LocalLLMSettings
from tests.plugins.local.test_models import word_error_rate

from .conftest import STORY, HeldLLM

QUESTION = "What is the capital of France?"
GREEDY = LocalLLMSettings(max_temperature=0)  # the same answer on every run
WAIT = 60  # seconds a frame may take on a busy two-core machine (a bound, not a measurement)


async def test_a_spoken_turn_on_the_local_models(
    serve, llama_server, whisper_stt, piper_tts, spoken_question
):
    microphone = bytes(3200) + spoken_question + bytes(32000)  # then 1 s of silence
    llm = LocalLLM(LLMSettings(), GREEDY, llama_server, owns_server=False)
    extra = {"personas": {"alex": {"system_prompt": "You are a helpful assistant."}}}
    async with (
        serve(extra, provider=llm, stt=whisper_stt, tts=piper_tts) as web,
        web.ws() as socket,
    ):
        health = (await web.http.get("/health")).json()
        assert health["providers"] == {"llm": "local", "stt": "whisper", "tts": "piper"}
        assert health["models"]["llm"] == "ready" and health["models"]["stt"] == "ready"
        await web.start_chat(socket)
        await web.send(socket, "start_listening", format="pcm16", sample_rate=16000)
        assert (await web.recv(socket))["type"] == "listening_started"
        assert (await web.recv(socket))["output_format"] == "pcm_24000"
        await _speak(socket, microphone)
        heard = await web.recv_until(socket, "transcription_finished", WAIT)
        assert heard[0] == {"type": "speech_started"}
        # What was said, give or take a word: through the live session's voice activity
        # detector tiny.en now and then hears "friends" even for a synthesis it heard right
        # whole (the recogniser's accuracy has its own test).
        assert word_error_rate(QUESTION, heard[-1]["text"]) < 0.2, heard[-1]["text"]
        frames = await web.recv_mixed(socket, "turn_complete", WAIT)
        texts = [f for f in frames if isinstance(f, dict)]
        audio = [parse_audio_frame(f) for f in frames if isinstance(f, bytes)]
        kinds = [f["type"] for f in texts]
        assert kinds[-3:] == ["message_complete", "audio_complete", "turn_complete"]
        reply = "".join(f["text"] for f in texts if f["type"] == "llm_chunk")
        assert reply.strip()  # what it says is the model's business: test_models checks that
        message_id = texts[kinds.index("message_started")]["message_id"]
        assert audio and {a[0] for a in audio} == {message_id}
        assert sum(len(a[3]) for a in audio) > 24000 * 2 // 2  # at least half a second of speech
        stored = await store.get_message(message_id)
        assert stored.status == "complete" and stored.content == reply
        assert stored.metadata["first_audio_ms"] > 0


async def test_speaking_over_a_local_reply_cuts_it_short(serve, whisper_stt, piper_tts):
    """Barge-in on the local models: the voice activity detector hears the user over the reply."""
    llm = HeldLLM()  # streams STORY, then holds the reply open until it is cut
    first = await _pcm(piper_tts, "Tell me a story.")
    second = await _pcm(piper_tts, "Stop, please wait.")
    async with serve(provider=llm, stt=whisper_stt, tts=piper_tts) as web, web.ws() as socket:
        await web.start_chat(socket)
        await web.send(socket, "start_listening", format="pcm16", sample_rate=16000)
        await web.recv_until(socket, "audio_format")
        await _speak(socket, first)
        await web.recv_until(socket, "transcription_finished", WAIT)
        frames = []
        while not any(isinstance(f, bytes) for f in frames):  # the reply is being spoken
            frames.append(await asyncio.wait_for(socket.recv(), WAIT))
        message_id = next(
            json.loads(f)["message_id"]
            for f in frames
            if isinstance(f, str) and json.loads(f)["type"] == "message_started"
        )
        await _speak(socket, second)
        after = await web.recv_mixed(socket, "turn_complete", WAIT)
        texts = [f for f in after if isinstance(f, dict)]
        assert {"type": "speech_started"} in texts
        assert {"type": "interrupted", "message_id": message_id} in texts
        heard = next(f["text"] for f in texts if f["type"] == "transcription_finished")
        assert "stop" in heard.lower()
        assert [f["text"] for f in texts if f["type"] == "message_complete"][
            -1
        ] == "Sure, go ahead."
        stored = await store.get_message(message_id)
        assert (stored.status, stored.content) == ("interrupted", "".join(STORY))


async def _pcm(tts, text: str) -> bytes:
    """``text`` spoken as 16 kHz PCM16, with 1 s of silence after it (the pause that ends it)."""
    speech = b"".join([c async for c in tts.synthesize(text, output_format="pcm_16000")])
    return bytes(3200) + speech + bytes(32000)


async def _speak(socket, audio: bytes) -> None:
    for start in range(0, len(audio), 3200):  # 100 ms frames
        await socket.send(audio[start : start + 3200])
