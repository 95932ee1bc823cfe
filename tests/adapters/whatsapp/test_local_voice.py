"""A WhatsApp voice note answered with a voice note, on the local models (no cloud, no keys)."""

from __future__ import annotations

import asyncio

from parley.audio import DecodedAudio, encode_ogg_opus
from parley.core import store
from parley.core.config import LLMSettings
from parley.plugins.local.llm import LocalLLM
from parley.plugins.local.settings import LocalLLMSettings
from tests.plugins.local.test_models import word_error_rate

QUESTION = "What is the capital of France?"
GREEDY = LocalLLMSettings(max_temperature=0)  # the same answer on every run
NO_GREETING = {"languages": {"en": {"prompts": {"start": ""}}}}


async def test_a_voice_note_gets_a_spoken_answer(
    serve, meta, graph, providers, llama_server, whisper_stt, piper_tts, spoken_question
):
    note = encode_ogg_opus(DecodedAudio(spoken_question, 16000))
    graph.media["media-local"] = (note, "audio/ogg; codecs=opus")
    providers.llm = LocalLLM(LLMSettings(), GREEDY, llama_server, owns_server=False)
    providers.stt, providers.tts = whisper_stt, piper_tts
    payload = meta.envelope(
        meta.value(
            [meta.audio_message("wamid.L1", "media-local", voice=True)],
            [meta.contact(meta.ANN, "Ann")],
        )
    )
    async with serve(NO_GREETING) as served:
        assert (await served.deliver(payload)).status_code == 200
        # A bound for a busy two-core machine, not a measurement.
        await asyncio.wait_for(served.adapter.runner.idle(), timeout=60)
        user = await store.get_or_create_user("whatsapp", meta.ANN)
        conversation = await store.find_open_conversation(user.id, "whatsapp")
        question, reply = await store.list_messages(conversation.id)
    # What was said, give or take a word (tiny.en now and then hears "friends" after the voice
    # note's lossy codec; the recogniser's accuracy has its own test).
    assert word_error_rate(QUESTION, question.content) < 0.2, question.content
    assert reply.content.strip() and reply.status == "complete"
    upload = graph.of("upload")[0]
    assert upload.file[:4] == b"OggS"
    heard = await whisper_stt.transcribe(upload.file)
    assert word_error_rate(reply.content, heard.text) < 0.5  # the voice note says the answer
    assert graph.of("audio")[0].json["audio"]["voice"] is True
