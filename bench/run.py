"""Time to first audio: the streaming speech pipeline against "wait for the whole reply, then speak".

Runs the real engine (SQLite in a temp folder) with fake providers of set latency (bench/fakes.py)
and prints a Markdown table (docs/benchmarks.md holds a copy). ``make bench`` runs it.

    python bench/run.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

from fakes import TalkingTTS, TypingLLM  # bench/ is on sys.path when run as a script

from parley.core import store
from parley.core.engine import Engine
from parley.core.events import AudioChunk, MessageCompleted
from parley.core.inbound import Inbound
from parley.core.loading import settings_from_dict
from parley.core.plugins import Hooks, make_plugin_manager
from parley.core.speech import SpeechOptions


@dataclass(frozen=True)
class Scenario:
    name: str
    first_token: float
    per_token: float
    first_byte: float


SCENARIOS = [
    Scenario("fast LLM, fast TTS", 0.25, 0.015, 0.10),
    Scenario("typical LLM, typical TTS", 0.45, 0.030, 0.20),
    Scenario("slow LLM, slow TTS", 0.80, 0.050, 0.35),
]

SETTINGS = {
    "llm": {"provider": "typing"},
    "conversation": {"default_template": "t"},
    "personas": {"p": {"name": "P", "system_prompt": "Be helpful."}},
    "templates": {"t": {"personas": ["p"]}},
}


async def _engine(scenario: Scenario) -> tuple[Engine, str]:
    settings = settings_from_dict(SETTINGS)
    engine = Engine(
        settings,
        Hooks(make_plugin_manager((), entry_points=False)),
        TypingLLM(first_token=scenario.first_token, per_token=scenario.per_token),
        tts=TalkingTTS(first_byte=scenario.first_byte),
    )
    user = await store.get_or_create_user("bench", "bench")
    conversation = (await engine.open(user.id, "bench")).conversation
    return engine, conversation.id


async def streaming(scenario: Scenario) -> tuple[float, float]:
    """Time to first audio and to last audio with the pipeline."""
    engine, conversation_id = await _engine(scenario)
    started = time.perf_counter()
    first = last = None
    turn = engine.turn(conversation_id, Inbound(text="plan my morning"), speech=SpeechOptions())
    async with aclosing(turn) as events:
        async for event in events:
            if isinstance(event, AudioChunk):
                first = first or time.perf_counter() - started
                last = time.perf_counter() - started
    assert first is not None and last is not None
    return first, last


async def wait_then_speak(scenario: Scenario) -> tuple[float, float]:
    """Time to first and last audio when the whole reply is synthesised once it is complete."""
    engine, conversation_id = await _engine(scenario)
    started = time.perf_counter()
    text = ""
    async with aclosing(engine.turn(conversation_id, Inbound(text="plan my morning"))) as events:
        async for event in events:
            if isinstance(event, MessageCompleted):
                text = event.text
    assert engine.tts is not None
    first = last = None
    async for _chunk in engine.tts.synthesize(text):
        first = first or time.perf_counter() - started
        last = time.perf_counter() - started
    assert first is not None and last is not None
    return first, last


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await store.connect(f"sqlite://{Path(folder) / 'bench.sqlite3'}")
        try:
            rows = []
            for scenario in SCENARIOS:
                s_first, s_last, w_first, w_last = [], [], [], []
                for _ in range(runs):
                    first, last = await streaming(scenario)
                    s_first.append(first)
                    s_last.append(last)
                    first, last = await wait_then_speak(scenario)
                    w_first.append(first)
                    w_last.append(last)
                rows.append((scenario, *map(statistics.median, (s_first, w_first, s_last, w_last))))
        finally:
            await store.close()
    words = len(TypingLLM(first_token=0, per_token=0).words)
    print(f"Median of {runs} runs; a reply of {words} words in 6 sentences.\n")
    print(
        "| Scenario (LLM first token / per token, TTS first byte) | First audio, streaming "
        "| First audio, wait then speak | Speed-up | Last audio, streaming "
        "| Last audio, wait then speak |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for scenario, s_first, w_first, s_last, w_last in rows:
        label = (
            f"{scenario.name} ({scenario.first_token * 1000:.0f} / {scenario.per_token * 1000:.0f} ms, "
            f"{scenario.first_byte * 1000:.0f} ms)"
        )
        print(
            f"| {label} | {s_first * 1000:.0f} ms | {w_first * 1000:.0f} ms | "
            f"{w_first / s_first:.1f}x | {s_last * 1000:.0f} ms | {w_last * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median reported)")
    asyncio.run(main(parser.parse_args().runs))
