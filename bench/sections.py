"""The benchmark's sections. Each starts the processes it needs, measures, stops them and returns
plain data (lists of runs) for the report; systems are interleaved and every figure repeated."""

from __future__ import annotations

import sqlite3
import statistics
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import harness
import load
from fakes import Pace


@dataclass(frozen=True)
class Sizes:
    """How big and how often: the full run, or the smoke test's tiny one."""

    levels: tuple[int, ...] = (1, 10, 100, 500)
    seconds: float = 4.0
    """Each throughput run's measuring window."""
    warmup: float = 0.5
    """From every conversation's first turn done to the window."""
    repeats: int = 3
    sockets: int = 1000
    audio_turns: int = 7
    anatomy_turns: int = 20
    speech_scenarios: int = 3
    history: tuple[int, ...] = (10_000, 100_000)
    database_rows: int = 1_000_000
    history_turns: int = 6
    """Turns per conversation and repeat (their median is one figure; spread over repeats); more
    would take ``make bench`` past ten minutes on a slower machine. CPU time is the kernel's
    count in nanoseconds since session 11 (:func:`harness.cpu_seconds`); read in psutil's 10 ms
    ticks before, six turns measured it to 1.7 ms a turn."""
    scale_conversations: int = 100
    scale_repeats: int = 2
    """1 vs 2 processes is no goal of issue 13: two repeats (not three) keep ``make bench``
    under ten minutes on a slower machine."""


TEXT_PACE = Pace(first_token=0.2, per_token=0.01, words=20)
"""Throughput runs: a 20-word reply, 0.39 s from request to last word."""

SPEECH_PACES = {
    "fast LLM, fast TTS": Pace(first_token=0.25, per_token=0.015, first_byte=0.10, words=20),
    "typical LLM, typical TTS": Pace(first_token=0.45, per_token=0.030, first_byte=0.20, words=20),
    "slow LLM, slow TTS": Pace(first_token=0.80, per_token=0.050, first_byte=0.35, words=20),
}
"""Spoken turns: 20 words (the first sentence, 9 words, then two more), so a turn (which waits
for the last sentence's audio) takes 0.8 to 2.4 s."""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _summary(result: load.LoadResult, pace: Pace) -> dict:
    done = [t.done for t in result.turns]
    added = [t.done - pace.generation_time() for t in result.turns]
    return {
        "turns": len(done),
        "throughput": result.throughput,
        "counted": result.counted,
        "p50": percentile(done, 0.5) if done else None,
        "p95": percentile(done, 0.95) if done else None,
        "p95_added": percentile(added, 0.95) if added else None,
        "cpu_per_turn": result.cpu_per_turn,
        "errors": result.errors,
    }


async def warm(server: harness.Server) -> None:
    """Two turns, so lazy imports and first connections are not measured."""
    socket = await load.open_socket(server.ws_url, load.device_id("warm"))
    try:
        for _ in range(2):
            await load.turn(socket)
    finally:
        await socket.close()


async def text(sizes: Sizes, folder: Path) -> dict:
    """Throughput, latency and CPU per turn at each level of concurrent conversations."""
    fakes = harness.start_fakes(TEXT_PACE, folder)
    servers = []
    try:
        commits = {name: folder / f"{name}-commits.txt" for name in ("baseline", "parley")}
        servers.append(
            harness.start_baseline(
                fakes,
                folder,
                f"sqlite://{folder}/base.sqlite3",
                wait=False,
                commits=commits["baseline"],
            )
        )
        servers.append(
            harness.start_parley(
                fakes,
                folder,
                f"sqlite://{folder}/parley.sqlite3",
                wait=False,
                commits=commits["parley"],
            )
        )
        harness.listening(servers)  # started together: nothing is measured yet
        for server in servers:
            await warm(server)
        databases = {
            "baseline": (folder / "base.sqlite3", "base_message", commits["baseline"]),
            "parley": (folder / "parley.sqlite3", "parley_message", commits["parley"]),
        }
        anatomy = await _anatomy(servers, fakes, sizes.anatomy_turns, databases)
        runs: dict = {s.name: {n: [] for n in sizes.levels} for s in servers}
        for repeat in range(sizes.repeats):
            order = servers if repeat % 2 == 0 else servers[::-1]
            for level in sizes.levels:
                for server in order:
                    result = await load.load([server], level, sizes.seconds, warmup=sizes.warmup)
                    runs[server.name][level].append(_summary(result, TEXT_PACE))
        window = {"seconds": sizes.seconds, "warmup": sizes.warmup, "repeats": sizes.repeats}
        return {"pace": vars(TEXT_PACE), "runs": runs, "anatomy": anatomy, "window": window}
    finally:
        for server in [*servers, fakes]:
            server.stop()


async def sockets(sizes: Sizes, folder: Path) -> dict:
    """Memory and CPU of idle sockets, on fresh server processes (a heap grown by earlier load
    would hide the cost). Every process is started at once, each on its own database, then
    measured one at a time (the others idle): CPU time and memory are read per process."""
    home = folder / "sockets"
    home.mkdir()
    fakes = harness.start_fakes(TEXT_PACE, home)
    out: dict = {"baseline": [], "parley": []}
    servers: list[harness.Server] = []
    try:
        for repeat in range(sizes.repeats):
            pair = [
                harness.start_baseline(
                    fakes, home, f"sqlite://{home}/base{repeat}.sqlite3", wait=False
                ),
                harness.start_parley(
                    fakes, home, f"sqlite://{home}/parley{repeat}.sqlite3", wait=False
                ),
            ]
            servers += pair if repeat % 2 == 0 else pair[::-1]
        harness.listening(servers)
        for server in servers:
            try:
                await warm(server)
                out[server.name].append(vars(await load.idle_sockets(server, sizes.sockets)))
            finally:
                server.stop()
        return out
    finally:
        for server in [*servers, fakes]:
            server.stop()


async def speech(sizes: Sizes, folder: Path) -> dict:
    """Time to first audio over ``/ws`` against the ideal, per provider speed (every scenario's
    processes are started together, then measured one scenario at a time)."""
    scenarios = list(SPEECH_PACES.items())[: sizes.speech_scenarios]
    started: list[tuple[harness.Server, harness.Server]] = []
    out = {}
    try:
        for index, (_, pace) in enumerate(scenarios):
            home = folder / f"speech-{index}"
            home.mkdir()
            fakes = harness.start_fakes(pace, home, wait=False)
            db = f"sqlite://{home}/parley.sqlite3"
            started.append((fakes, harness.start_parley(fakes, home, db, speech=True, wait=False)))
        harness.listening([server for pair in started for server in pair])
        for (name, pace), (fakes, parley) in zip(scenarios, started, strict=True):
            out[name] = await _first_audio(pace, fakes, parley, sizes.audio_turns)
            parley.stop()
        return out
    finally:
        for pair in started:
            for server in pair:
                server.stop()


async def _first_audio(
    pace: Pace, fakes: harness.Server, parley: harness.Server, turns: int
) -> dict:
    """One scenario: a warm-up turn, then ``turns`` spoken turns, each timed."""
    socket = await load.open_socket(parley.ws_url, load.device_id())
    await load.enable_audio(socket)
    await load.turn(socket, audio=True)  # warm-up
    await load.timeline(fakes)
    done_turns, steps = [], []
    for _ in range(turns):
        done_turns.append(await load.turn(socket, audio=True))
        steps.append(_speech_steps(done_turns[-1], await load.timeline(fakes)))
    await socket.close()
    sentence, done = pace.first_sentence()
    return {
        "pace": vars(pace),
        "first_sentence_words": len(sentence.split()),
        "first_sentence_done": done,
        "ideal": pace.ideal_first_audio(),
        "first_audio": [t.first_audio for t in done_turns],
        "first_chunk": [t.first_chunk for t in done_turns],
        "steps": steps,
    }


def _speech_steps(turn: load.Turn, at: dict[str, float]) -> dict[str, float]:
    """Where the time to first audio went (seconds), from the client's and the fakes' clocks."""
    assert turn.first_audio is not None
    return {
        "to_llm_request": at["llm_request"] - turn.sent_at,
        "llm_to_first_sentence": at["llm_first_sentence"] - at["llm_request"],
        "sentence_to_next_word": at["llm_next_word"] - at["llm_first_sentence"],
        "next_word_to_tts_request": at["tts_request"] - at["llm_next_word"],
        "tts_to_first_byte": at["tts_first_byte"] - at["tts_request"],
        "first_byte_to_client": turn.sent_at + turn.first_audio - at["tts_first_byte"],
    }


def _probed(path: Path) -> dict[str, list[float]]:
    """The moments the probe (``bench/probe``) noted, by kind: ``commit``, ``post``, ``sent``."""
    moments: dict[str, list[float]] = {"commit": [], "post": [], "sent": []}
    for line in path.read_text().splitlines():
        kind, _, at = line.partition(" ")
        moments[kind].append(float(at))
    return moments


def _last_before(times: list[float], moment: float) -> float:
    """The last of ``times`` at or before ``moment``."""
    return max(t for t in times if t <= moment)


def _user_message_stored_at(database: Path, table: str) -> float:
    """Wall clock of the newest user message's ``created_at`` in a SQLite ``database``.

    Both systems take it just before the message's INSERT (and commit), so a figure measured
    from it includes storing the message: it errs on the slow side."""
    with closing(sqlite3.connect(database)) as db:
        (value,) = db.execute(
            f"SELECT created_at FROM {table} WHERE role = 'user' ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    return datetime.fromisoformat(value).timestamp()


async def _anatomy(
    servers: list[harness.Server],
    fakes: harness.Server,
    turns: int,
    databases: dict[str, tuple[Path, str, Path]],
) -> dict:
    """One conversation at a time: where a text turn's time goes outside the LLM, per system
    (``databases``: each system's SQLite file, message table and probe's file)."""
    sockets = {s.name: await load.open_socket(s.ws_url, load.device_id()) for s in servers}
    out: dict = {server.name: [] for server in servers}
    for _, _, commits in databases.values():
        commits.touch()  # the probe notes its moments while its file exists
    await load.timeline(fakes)
    for i in range(turns):
        for server in servers if i % 2 == 0 else servers[::-1]:
            turn = await load.turn(sockets[server.name])
            at = await load.timeline(fakes)
            database, table, commits = databases[server.name]
            stored = _user_message_stored_at(database, table)
            # In a turn: the SDK's post() called last before the request arrived at the fake,
            # the request it sent (its body's last bytes handed to the socket; the fake notes
            # the arrival once the headers are in, so it may come first), and the message
            # committed before the call (the user's: the reply's INSERT comes after it).
            probed = _probed(commits)
            posted = _last_before(probed["post"], at["llm_request"])
            sent = min(t for t in probed["sent"] if t >= posted)
            committed = _last_before(probed["commit"], posted)
            out[server.name].append(
                {
                    "to_llm_request": at["llm_request"] - turn.sent_at,
                    "committed_to_request_sent": sent - committed,
                    "in_sdk_post": sent - posted,
                    "committed_to_llm_request": at["llm_request"] - committed,
                    "stored_to_llm_request": at["llm_request"] - stored,
                    "llm": at["llm_last_word"] - at["llm_request"],
                    "after_llm": turn.sent_at + turn.done - at["llm_last_word"],
                }
            )
    for socket in sockets.values():
        await socket.close()
    for _, _, commits in databases.values():
        commits.unlink()
    return out


async def scale(sizes: Sizes, folder: Path, postgres: str, redis: str) -> dict:
    """1 vs 2 ``parley serve`` processes on PostgreSQL + Redis, the same load spread over them."""
    schema = f"parley_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    home = folder / "scale"
    home.mkdir()
    fakes = harness.start_fakes(TEXT_PACE, home)
    servers: list[harness.Server] = []
    try:
        db = f"{postgres}?schema={schema}"
        for _ in range(2):
            servers.append(harness.start_parley(fakes, home, db, redis=redis))
            await warm(servers[-1])
        runs: dict = {"1 process": [], "2 processes": []}
        for repeat in range(sizes.scale_repeats):
            plans = [("1 process", servers[:1]), ("2 processes", servers)]
            for name, group in plans if repeat % 2 == 0 else plans[::-1]:
                result = await load.load(
                    group, sizes.scale_conversations, sizes.seconds, warmup=sizes.warmup
                )
                runs[name].append(_summary(result, TEXT_PACE))
        return {"conversations": sizes.scale_conversations, "runs": runs}
    finally:
        for server in [*servers, fakes]:
            server.stop()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
