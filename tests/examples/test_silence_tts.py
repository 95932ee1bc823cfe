"""docs/examples/silence_tts.py works as docs/providers.md says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from parley.core import store
from parley.core.config import SettingsError
from parley.core.events import AudioChunk, ErrorEvent, MessageCompleted
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.providers import TTSProvider
from parley.core.runtime import Runtime
from parley.core.speech import SpeechOptions
from parley.testing import collect

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "silence_tts.py"


def _load():
    name = "silence_tts_example"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_example_plugin_speaks_a_turn(make_settings):
    example = _load()
    settings = make_settings({"tts": {"provider": "silence", "ms_per_word": 100}})
    pm = make_plugin_manager((), entry_points=False, extra=[("silence", example)])
    runtime = Runtime(settings, pm)
    await runtime.start(adapters=False)
    try:
        assert isinstance(runtime.tts, TTSProvider) and runtime.tts.name == "silence"
        user = await store.get_or_create_user("test", "docs")
        conv = (await runtime.engine.open(user.id, "test")).conversation
        events = await collect(
            runtime.engine.turn(conv.id, Inbound(text="hi"), speech=SpeechOptions())
        )
        chunks = [e for e in events if isinstance(e, AudioChunk)]
        assert chunks and {c.format for c in chunks} == {"pcm_16000"}
        assert all(len(c.data) == 3200 for c in chunks)  # 100 ms at 16 kHz
        events = await collect(
            runtime.engine.turn(conv.id, Inbound(text="hi"), speech=SpeechOptions("mp3_44100_128"))
        )
        assert [e.code for e in events if isinstance(e, ErrorEvent)] == ["tts_failed"]
        assert any(isinstance(e, MessageCompleted) and e.status == "complete" for e in events)
    finally:
        await runtime.stop()


def test_example_settings_are_validated(make_settings):
    example = _load()
    with pytest.raises(SettingsError, match=r"^tts\.ms_per_word: "):
        example.make_silence_tts(make_settings({"tts": {"ms_per_word": 0}}))
