"""A spoken turn over ``/ws`` on the local models: speech in, transcript, reply, speech out."""

from __future__ import annotations

from parley.adapters.web.frames import parse_audio_frame
from parley.core import store
from parley.core.config import LLMSettings
from parley.plugins.local.llm import LocalLLM
from parley.plugins.local.settings import LocalLLMSettings

QUESTION = "What is the capital of France?"
WAIT = 60  # seconds a frame may take on a busy two-core machine (a bound, not a measurement)


async def test_a_spoken_turn_on_the_local_models(serve, llama_server, whisper_stt, piper_tts):
    speech = b"".join(
        [chunk async for chunk in piper_tts.synthesize(QUESTION, output_format="pcm_16000")]
    )
    microphone = bytes(6400) + speech + bytes(32000)  # 0.2 s, the question, 1 s of silence
    llm = LocalLLM(LLMSettings(), LocalLLMSettings(), llama_server, owns_server=False)
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
        for start in range(0, len(microphone), 3200):  # 100 ms frames
            await socket.send(microphone[start : start + 3200])
        heard = await web.recv_until(socket, "transcription_finished", WAIT)
        assert heard[0] == {"type": "speech_started"}
        assert heard[-1]["text"].lower().rstrip("?.") == QUESTION.lower().rstrip("?")
        frames = await web.recv_mixed(socket, "turn_complete", WAIT)
        texts = [f for f in frames if isinstance(f, dict)]
        audio = [parse_audio_frame(f) for f in frames if isinstance(f, bytes)]
        kinds = [f["type"] for f in texts]
        assert kinds[-3:] == ["message_complete", "audio_complete", "turn_complete"]
        reply = "".join(f["text"] for f in texts if f["type"] == "llm_chunk")
        assert "Paris" in reply
        message_id = texts[kinds.index("message_started")]["message_id"]
        assert audio and {a[0] for a in audio} == {message_id}
        assert sum(len(a[3]) for a in audio) > 24000 * 2 // 2  # at least half a second of speech
        stored = await store.get_message(message_id)
        assert stored.status == "complete" and stored.content == reply
        assert stored.metadata["first_audio_ms"] > 0
