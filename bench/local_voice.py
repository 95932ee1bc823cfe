"""Time to first audio of a spoken turn on the local models, over the real WebSocket.

Starts Parley with the shipped settings folder's personas and the local providers (llama.cpp
SmolLM2-135M, faster-whisper tiny.en, piper en_US-joe-medium) on loopback, then, on one socket,
times each turn from the end of the user's input to the first byte of spoken reply:

- typed: a ``user_message`` frame (no speech-to-text), the baseline;
- spoken: a question synthesised by piper, streamed as 16 kHz PCM in 100 ms frames as fast as
  a microphone would, followed by silence until the voice activity detector ends the utterance.

The spoken figure includes ``local.stt.silence_ms`` of waiting for the pause. Prints a Markdown
table (median and [min-max] over the runs, typed and spoken turns interleaved; the ratio is
spoken against typed, measured in the same run).

    python bench/local_voice.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import spread  # bench/ is on sys.path (run as a script)
from websockets.asyncio.client import connect

from parley.core.loading import load_settings
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import running_server

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What is the capital of France?",
    "How many days are there in a week?",
    "What colour is the sky on a clear day?",
]
FRAME = 3200  # 100 ms of 16 kHz PCM16


async def _until(socket: Any, kind: str) -> list[Any]:
    frames = []
    while True:
        raw = await asyncio.wait_for(socket.recv(), 120)
        frame = raw if isinstance(raw, bytes) else json.loads(raw)
        frames.append(frame)
        if isinstance(frame, dict) and frame["type"] == kind:
            return frames


async def _first_audio(socket: Any, started: float) -> tuple[float, float | None]:
    """Seconds to the first audio frame, and to transcription_finished (spoken turns)."""
    heard = None
    first = None
    while True:
        raw = await asyncio.wait_for(socket.recv(), 120)
        now = time.perf_counter() - started
        if isinstance(raw, bytes):
            first = first if first is not None else now
            continue
        frame = json.loads(raw)
        if frame["type"] == "transcription_finished":
            heard = now
        if frame["type"] == "turn_complete":
            assert first is not None, "no audio in the reply"
            return first, heard


async def _speech(runtime: Runtime, text: str) -> bytes:
    tts = runtime.tts.primary
    chunks = [c async for c in tts.synthesize(text, output_format="pcm_16000")]
    return bytes(3200) + b"".join(chunks)


async def bench(runs: int) -> list[tuple[str, list[float], list[float]]]:
    # The local models, whatever cloud keys the environment holds ("auto" would choose those).
    for kind, name in (("LLM", "local"), ("STT", "whisper"), ("TTS", "piper")):
        os.environ[f"PARLEY_{kind}__PROVIDER"] = name
    settings = load_settings(ROOT / "settings")
    folder = tempfile.mkdtemp(prefix="parley-bench-")
    database = settings.database.__class__(url=f"sqlite://{folder}/bench.sqlite3")
    settings = settings.with_overrides(database=database)
    runtime = Runtime(settings)
    runtime.build_providers()
    names = tuple(getattr(getattr(runtime, k), "name", None) for k in ("llm", "stt", "tts"))
    if names != ("local", "whisper", "piper"):
        raise SystemExit(f"the local providers are not the ones chosen: {names} (keys set?)")
    typed: list[float] = []
    spoken: list[float] = []
    transcribed: list[float] = []
    app = create_app(settings, runtime)
    async with running_server(app) as base:
        for kind in ("llm", "stt", "tts"):  # each behind its failover chain
            await getattr(runtime, kind).primary.load()
        url = base.replace("http://", "ws://") + "/ws?device_id=bench"
        async with connect(url, max_size=None) as socket:
            await _until(socket, "message_complete")  # the greeting
            await socket.send(json.dumps({"type": "audio_settings", "data": {"enabled": True}}))
            await _until(socket, "audio_format")
            start = {"type": "start_listening", "data": {"format": "pcm16", "sample_rate": 16000}}
            for run in range(runs):  # interleaved: a typed turn, then the same question spoken
                question = QUESTIONS[run % len(QUESTIONS)]
                started = time.perf_counter()
                message = {"type": "user_message", "data": {"text": question}}
                await socket.send(json.dumps(message))
                typed.append((await _first_audio(socket, started))[0])
                await socket.send(json.dumps(start))
                await _until(socket, "listening_started")
                speech = await _speech(runtime, question)
                for offset in range(0, len(speech), FRAME):
                    await socket.send(speech[offset : offset + FRAME])
                    await asyncio.sleep(0.1)
                ended = time.perf_counter()  # the user stopped speaking here
                silence = asyncio.create_task(_silence(socket))
                first, heard = await _first_audio(socket, ended)
                silence.cancel()
                spoken.append(first)
                transcribed.append(heard or 0.0)
                await socket.send(json.dumps({"type": "stop_listening"}))
                await _until(socket, "listening_stopped")
    return [("typed (baseline)", typed, []), ("spoken", spoken, transcribed)]


async def _silence(socket: Any) -> None:
    """A microphone keeps sending (silence) after the user stops talking."""
    while True:
        await socket.send(bytes(FRAME))
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(bench(args.runs))
    baseline = statistics.median(results[0][1])
    print(
        f"Local spoken turn, {args.runs} runs each, typed and spoken interleaved (median "
        "[min-max]; seconds from the end of input)\n"
    )
    print("| turn | transcript | first audio | vs typed |")
    print("|---|---|---|---|")
    for name, firsts, heard in results:
        median = statistics.median(firsts)
        print(
            f"| {name} | {spread(heard, digits=2) if heard else '-'} | {spread(firsts, digits=2)} "
            f"| {median / baseline:.1f}x |"
        )


if __name__ == "__main__":
    main()
