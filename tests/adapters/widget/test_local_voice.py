"""The first `make run` experience: the widget in Chromium, a spoken question into its
microphone (a WAV file as Chromium's fake capture device), the local models hear it, answer it
and speak the answer, which the page plays. No key, no network, no fake provider."""

from __future__ import annotations

import wave

import pytest
from playwright.async_api import expect

from parley.core.config import LLMSettings
from parley.plugins.local.llm import LocalLLM
from parley.plugins.local.settings import LocalLLMSettings

from .conftest import CHROMIUM_ARGS, new_context
from .test_browser import LOG, open_demo

pytestmark = pytest.mark.asyncio(loop_scope="session")

WAIT = 60_000  # ms: a bound for a busy two-core machine, not a measurement


@pytest.fixture
def local_models(fakes, llama_server, whisper_stt, piper_tts):
    """The widget server's providers are the local models (greedy: the same answer each run)."""
    greedy = LocalLLMSettings(max_temperature=0)
    fakes.llm = LocalLLM(LLMSettings(), greedy, llama_server, owns_server=False)
    fakes.stt, fakes.tts = whisper_stt, piper_tts
    return fakes


@pytest.fixture
def microphone(tmp_path, spoken_question):
    """A WAV file Chromium plays as the microphone: a pause, the question, then silence."""
    path = tmp_path / "question.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(16000) + spoken_question + bytes(32000 * 4))
    return path


@pytest.mark.serial  # Chromium captures the file in real time: a busy machine drops samples
async def test_a_spoken_question_gets_a_spoken_answer(local_models, microphone, chromium, server):
    from playwright.async_api import async_playwright

    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={microphone}%noloop"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=args)
        context = await new_context(browser, base_url=server.url)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            await open_demo(page)
            await page.get_by_role("button", name="Start voice input").click()
            log = page.locator(LOG)
            await expect(log).to_contain_text("capital of France", timeout=WAIT)
            await expect(log).to_contain_text("Paris", timeout=WAIT)
            await page.wait_for_function("__parleyTest.playedChunks >= 1", timeout=WAIT)
            stats = await page.evaluate("__parleyTest.stats")
        finally:
            await browser.close()
    assert errors == []
    assert stats["sentAudioFrames"] > 0
    assert "transcription_finished" in stats["frames"] and "audio_complete" in stats["frames"]
