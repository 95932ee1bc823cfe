"""Shared fixtures: settings built in code, a real SQLite database, a runtime with a scripted LLM,
the machine's PostgreSQL and Redis (required: their tests fail, never skip, without them).

Set ``PARLEY_TEST_POSTGRES_URL`` / ``PARLEY_TEST_REDIS_URL`` to use other servers than the local ones.
"""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis

from parley.core import store
from parley.core.config import Settings
from parley.core.engine import Engine
from parley.core.loading import settings_from_dict
from parley.core.plugins import Hooks, make_plugin_manager
from parley.testing import ScriptedLLM
from parley.testing_services import postgres_schema

BASE_SETTINGS: dict[str, Any] = {
    "llm": {"provider": "echo", "model": "test-model"},
    "conversation": {"default_template": "solo", "history_window": 20, "language": "en"},
    "personas": {
        "alex": {"name": "Alex", "system_prompt": "You are Alex.", "temperature": 0.9},
        "maya": {"name": "Maya", "system_prompt": {"en": "You are Maya.", "de": "Du bist Maya."}},
        "leo": {"name": "Leo", "system_prompt": "You are Leo.", "voice": "leo-voice"},
    },
    "templates": {
        "solo": {"name": "Solo", "personas": ["alex"]},
        "duo": {"name": "Duo", "personas": ["maya", "leo"]},
    },
    "languages": {
        "en": {
            "termination_phrases": ["goodbye", "bye", "stop"],
            "prompts": {"start": "Hi there!", "end": "Take care!", "nudge": "Still there?"},
        }
    },
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build validated settings from BASE_SETTINGS plus overrides; the database is a temp file."""

    def make(extra: dict[str, Any] | None = None) -> Settings:
        raw = merge(BASE_SETTINGS, {"database": {"url": f"sqlite://{tmp_path / 'db.sqlite3'}"}})
        return settings_from_dict(merge(raw, extra or {}))

    return make


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[str]:
    """A migrated SQLite database in a temp file, closed after the test."""
    url = f"sqlite://{tmp_path / 'db.sqlite3'}"
    await store.connect(url)
    try:
        yield url
    finally:
        await store.close()


@pytest.fixture
def llm() -> ScriptedLLM:
    """A scripted LLM provider."""
    return ScriptedLLM()


@pytest.fixture
def make_engine(
    db: str, make_settings: Callable[..., Settings], llm: ScriptedLLM
) -> Callable[..., Engine]:
    """An engine over the test database, with the built-in plugins and optional extra ones."""

    def make(extra: dict[str, Any] | None = None, plugins: tuple[object, ...] = ()) -> Engine:
        settings = make_settings(extra)
        pm = make_plugin_manager(
            settings.plugins.disable,
            entry_points=False,
            extra=[(f"test-plugin-{i}", p) for i, p in enumerate(plugins)],
        )
        return Engine(settings, Hooks(pm), llm)

    return make


_PG_CANDIDATES = (
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
)


async def _first_reachable(urls: tuple[str, ...]) -> tuple[str | None, list[str]]:
    errors = []
    for url in urls:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        await conn.close()
        return url, errors
    return None, errors


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL; fails the tests (no skip) when there is none."""
    env = os.environ.get("PARLEY_TEST_POSTGRES_URL")
    urls = (env,) if env else _PG_CANDIDATES
    # Run in a worker thread: this fixture may be requested from inside a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        url, errors = pool.submit(asyncio.run, _first_reachable(urls)).result()
    if url is None:
        pytest.fail(
            "PostgreSQL is required for these tests but is unreachable:\n  "
            + "\n  ".join(errors)
            + "\nStart it or set PARLEY_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    return url


REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix on the machine's Redis (its keys deleted after); fails when it is down."""
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); .ci/run starts it")
    prefix = f"parley-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def pg_schema_url(postgres_url: str) -> AsyncIterator[str]:
    """A ``database.url`` on a fresh PostgreSQL schema of its own, dropped after the test."""
    async with postgres_schema(postgres_url) as url:
        yield url


# -- the local models (parley/plugins/local), loaded once per test session ----------------------


@pytest.fixture(scope="session")
def llama_server() -> Any:
    """The shipped SmolLM2 served by llama.cpp on loopback, started once for every test."""
    from parley.plugins.local.llm import LlamaServer
    from parley.plugins.local.models import gguf_path
    from parley.plugins.local.settings import LocalLLMSettings

    server = LlamaServer(gguf_path(), LocalLLMSettings())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def whisper_stt() -> Any:
    """The ``whisper`` provider with the shipped tiny.en model, loaded once."""
    from parley.plugins.local.models import whisper_model_path
    from parley.plugins.local.settings import LocalSTTSettings
    from parley.plugins.local.stt import WhisperEngine, WhisperSTT

    settings = LocalSTTSettings()
    engine = WhisperEngine(whisper_model_path(), settings)
    engine.load()
    return WhisperSTT(settings, engine)


@pytest.fixture(scope="session")
def piper_tts() -> Any:
    """The ``piper`` provider with the shipped voice (its child process starts on first use)."""
    from parley.plugins.local.models import piper_command, piper_voice
    from parley.plugins.local.settings import LocalTTSSettings
    from parley.plugins.local.tts import PiperTTS

    tts = PiperTTS(LocalTTSSettings(), command=piper_command(), voice=piper_voice())
    yield tts
    tts.stop()


@pytest.fixture(scope="session")
def spoken_question(piper_tts: Any, whisper_stt: Any) -> Any:
    """ "What is the capital of France?" spoken by the local voice, as 16 kHz mono PCM16.

    piper's voice varies a little from one synthesis to the next, and now and then tiny.en
    hears "friends"; the adapter tests need a question the model can answer, so this keeps the
    first synthesis the recogniser hears right (the word error rate has its own test)."""
    from parley.audio import decode_to_pcm16

    question = "What is the capital of France?"
    for _ in range(5):
        audio = piper_tts.process_for(None).synthesize(question)
        pcm = decode_to_pcm16(audio.pcm, source_format=f"pcm_{audio.sample_rate}").pcm
        heard = whisper_stt.engine.transcribe(pcm, "en").text
        if heard.lower().rstrip("?.") == question.lower().rstrip("?"):
            return pcm
    raise AssertionError(f"the local voice and recogniser disagree: {heard!r}")
