"""The local providers with their real models: the LLM answers, TTS and STT understand each other."""

from __future__ import annotations

import asyncio
import re

import pytest

from parley.core.config import LLMSettings, ModelSettings
from parley.core.providers import LiveTranscript, LLMRequest, SpeechStarted
from parley.plugins.local.llm import LocalLLM, fit, instructed
from parley.plugins.local.settings import LocalLLMSettings


def words(text: str) -> list[str]:
    """Lower-case words without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, heard: str) -> float:
    """Word-level edit distance over the reference's length."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1] / len(ref)


def test_word_error_rate_counts_edits():
    assert word_error_rate("the cat sat", "the cat sat.") == 0
    assert word_error_rate("the cat sat", "the hat sat down") == 2 / 3


async def test_the_local_llm_streams_the_capital_of_france(llama_server):
    llm = LocalLLM(LLMSettings(), LocalLLMSettings(), llama_server, owns_server=False)
    request = LLMRequest(
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        model=ModelSettings(temperature=0.0),
    )
    try:
        chunks = [chunk async for chunk in llm.stream(request)]
    finally:
        await llm.aclose()
    pieces = [chunk.text for chunk in chunks if chunk.text]
    assert len(pieces) > 3  # streamed token by token, not in one piece
    assert "Paris" in "".join(pieces)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 80
    assert llama_server.ready


async def test_the_token_limit_caps_a_reply(llama_server):
    llm = LocalLLM(LLMSettings(), LocalLLMSettings(max_tokens=5), llama_server, owns_server=False)
    request = LLMRequest(
        messages=[{"role": "user", "content": "Tell me a long story about a dragon."}],
        model=ModelSettings(),
    )
    try:
        chunks = [chunk async for chunk in llm.stream(request)]
    finally:
        await llm.aclose()
    assert chunks[-1].usage.completion_tokens == 5
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]


SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


async def test_speech_synthesised_locally_is_transcribed_locally(piper_tts, whisper_stt):
    audio = b"".join(
        [chunk async for chunk in piper_tts.synthesize(SENTENCE, output_format="opus_48000_32")]
    )
    assert audio[:4] == b"OggS"
    heard = await whisper_stt.transcribe(audio, mime_type="audio/ogg")
    assert word_error_rate(SENTENCE, heard.text) < 0.1, heard.text
    assert 2 < heard.duration < 6


@pytest.mark.parametrize("rate", [16000, 48000])
async def test_a_live_session_ends_the_utterance_on_silence(piper_tts, whisper_stt, rate):
    speech = b"".join(
        [chunk async for chunk in piper_tts.synthesize(SENTENCE, output_format=f"pcm_{rate}")]
    )
    silence = bytes(2 * rate)  # one second
    frame = rate // 5  # 100 ms of PCM16
    session = await whisper_stt.live(encoding="pcm16", sample_rate=rate)
    async with session, asyncio.timeout(60):  # a bound for a busy machine, not a measurement
        stream = silence + speech + silence
        for start in range(0, len(stream), frame):  # 100 ms frames, as a microphone sends
            await session.send(stream[start : start + frame])
        results = []
        async for result in session:
            results.append(result)
            if isinstance(result, LiveTranscript):
                break
    assert isinstance(results[0], SpeechStarted) and 0.7 < results[0].at < 1.3
    final = results[-1]
    assert final.is_final and final.speech_final
    assert word_error_rate(SENTENCE, final.text) < 0.1, final.text
    assert 0.6 < final.start < 1.1 and 2 < final.duration < 6


async def test_a_live_container_stream_is_transcribed_when_finalised(piper_tts, whisper_stt):
    """WebM/OGG from a browser's MediaRecorder cannot be cut while it streams: ``finalize``."""
    ogg = b"".join(
        [chunk async for chunk in piper_tts.synthesize(SENTENCE, output_format="opus_48000_32")]
    )
    session = await whisper_stt.live(encoding="webm", sample_rate=None)
    async with asyncio.timeout(60):  # a bound for a busy machine, not a measurement
        for start in range(0, len(ogg), 1000):
            await session.send(ogg[start : start + 1000])
        await session.finalize()
        await session.close()
        results = [result async for result in session]
    [final] = results
    assert final.is_final and final.speech_final and final.start == 0
    assert word_error_rate(SENTENCE, final.text) < 0.1, final.text


def test_fit_keeps_the_system_prompt_and_the_latest_turns():
    messages = [
        {"role": "system", "content": "S" * 10},
        {"role": "user", "content": "a" * 50},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "result"},
        {"role": "assistant", "content": "b" * 50},
        {"role": "user", "content": [{"type": "text", "text": "c" * 50}]},
    ]
    assert [m["content"][0] for m in fit(messages, 1000)] == ["S", "a", "b", "c"]
    assert [m["content"][0] for m in fit(messages, 120)] == ["S", "b", "c"]
    assert fit(messages, 30) == [
        {"role": "system", "content": "S" * 10},
        {"role": "user", "content": "c" * 20},
    ]


async def test_a_history_longer_than_the_context_still_gets_an_answer(llama_server):
    llm = LocalLLM(LLMSettings(), LocalLLMSettings(), llama_server, owns_server=False)
    filler = "I like to talk about the weather and the sea and the hills. " * 5
    history = [{"role": ("user", "assistant")[i % 2], "content": filler} for i in range(60)]
    question = {"role": "user", "content": "What is the capital of France?"}
    request = LLMRequest(
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            *history,
            question,
        ],
        model=ModelSettings(temperature=0.0, max_tokens=20),
    )
    assert sum(len(m["content"]) for m in request.messages) > 2048 * 4  # over the context
    try:
        text = "".join([chunk.text async for chunk in llm.stream(request)])
    finally:
        await llm.aclose()
    assert text.strip()


def test_the_instruction_follows_the_system_prompt():
    system = {"role": "system", "content": "You are Alex."}
    user = {"role": "user", "content": "Hi"}
    assert instructed([system, user], "Reply in English.") == [
        {"role": "system", "content": "You are Alex.\nReply in English."},
        user,
    ]
    assert instructed([user], "Reply in English.")[0] == {
        "role": "system",
        "content": "Reply in English.",
    }


async def test_the_shipped_persona_answers_in_english(llama_server):
    """The shipped persona and greeting, as a first `make run` sends them."""
    llm = LocalLLM(LLMSettings(), LocalLLMSettings(), llama_server, owns_server=False)
    prompt = (
        "You are a friendly, helpful assistant. Answer briefly and ask when something is unclear."
    )
    request = LLMRequest(
        messages=[
            {"role": "system", "content": prompt},
            {"role": "assistant", "content": "Hi! How can I help you today?"},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        model=ModelSettings(temperature=0.9, max_tokens=50),
    )
    try:
        text = "".join([chunk.text async for chunk in llm.stream(request)])
    finally:
        await llm.aclose()
    assert "Paris" in text, text
