"""The benchmark's history section: per-turn cost as a conversation's history and the database
grow (SQLite, bulk-seeded), beside the same small conversation before the database was filled."""

from __future__ import annotations

import sqlite3
import statistics
import time
from contextlib import closing
from pathlib import Path

import harness
import load
import sections
import seed


async def _turns(server: harness.Server, device: str, count: int) -> dict:
    socket = await load.open_socket(server.ws_url, device)
    try:
        cpu = server.cpu()
        turns = [await load.turn(socket) for _ in range(count)]
        cpu = server.cpu() - cpu
    finally:
        await socket.close()
    generation = sections.TEXT_PACE.generation_time()
    return {
        "latency": statistics.median(t.done for t in turns),
        "added": statistics.median(t.done - generation for t in turns),
        "first": turns[0].done,
        "first_chunk": statistics.median(t.first_chunk for t in turns),
        "cpu_per_turn": cpu / count,
    }


async def history(sizes: sections.Sizes, folder: Path) -> dict:
    """Per-turn cost as a conversation's history and the database grow (SQLite, bulk-seeded)."""
    home = folder / "history"
    home.mkdir()
    path = home / "parley.sqlite3"
    fakes = harness.start_fakes(sections.TEXT_PACE, home)
    parley = None
    devices = {size: load.device_id(f"history{size}") for size in (10, *sizes.history)}
    filler = load.device_id("filler")
    try:
        parley = harness.start_parley(fakes, home, f"sqlite://{path}")
        await sections.warm(parley)
        for device in [*devices.values(), filler]:
            socket = await load.open_socket(parley.ws_url, device)
            await load.turn(socket)
            await socket.close()
        small = [
            await _turns(parley, devices[10], sizes.history_turns) for _ in range(sizes.repeats)
        ]
        parley.stop()
        ids = _conversation_ids(path, [*devices.values(), filler])
        small_counts = (
            seed.count_messages(str(path), ids[devices[10]]),
            seed.count_messages(str(path)),
        )
        started = time.perf_counter()
        for size, device in devices.items():
            if size > 10:
                seed.grow(str(path), ids[device], size)
        rest = sizes.database_rows - seed.count_messages(str(path))
        seed.fill(str(path), ids[filler], rest)
        seeded = time.perf_counter() - started
        parley = harness.start_parley(fakes, home, f"sqlite://{path}")
        await sections.warm(parley)
        rows = {size: [] for size in devices}
        for _ in range(sizes.repeats):
            for size, device in devices.items():
                rows[size].append(await _turns(parley, device, sizes.history_turns))
        return {
            "database_rows": seed.count_messages(str(path)),
            "seed_seconds": seeded,
            "small_database": small,
            # What the conversations held once measured (each measured turn adds two messages).
            "small_counts": small_counts,
            "messages": {
                size: seed.count_messages(str(path), ids[d]) for size, d in devices.items()
            },
            "rows": rows,
        }
    finally:
        for server in [parley, fakes]:
            if server:
                server.stop()


def _conversation_ids(path: Path, devices: list[str]) -> dict[str, str]:
    """Each device's open conversation, read straight from the database."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT i.external_id, c.id FROM parley_conversation c "
            "JOIN parley_identity i ON i.user_id = c.user_id "
            "WHERE i.channel = 'web' AND c.status = 'open'"
        ).fetchall()
    found = dict(rows)
    return {device: found[device] for device in devices}
