"""Chaos benchmark: lost / duplicated / out of order with SIGKILLs, recovery time, throughput.

    .venv/bin/python bench/chaos.py [--messages 500] [--kill-every 3]

Needs the PostgreSQL and Redis of the tests (``PARLEY_TEST_POSTGRES_URL``, default
``postgres://postgres@127.0.0.1:5432/test``; Redis on 127.0.0.1:6379). Prints a markdown table.

1. Throughput: WhatsApp messages from many senders at once, no kills, with 1 and then 2
   processes (the same fake LLM, 4 pieces 20 ms apart): turns per second, and the ratio.
2. Chaos: three processes, a random one SIGKILLed every ``--kill-every`` seconds and started
   again; WhatsApp and Telegram deliveries twice to two processes, REST with Idempotency-Key.
   Recovery: for a message whose claim was taken over (attempts > 1), the time from the kill
   before its reply to the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_cluster import (
    Cluster,
    Traffic,
    killer,
    verdict,
    write_settings,
)
from chaos_fakes import Fakes, expected

from parley.testing_services import create_schema, drop_schema

PG = os.environ.get("PARLEY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379/0"


async def _cluster(folder: Path, processes: int, fakes: Fakes, lease: float):
    schema, db = await create_schema(PG, "parley_chaos")
    write_settings(folder, db, REDIS, fakes.base, lease=lease)
    cluster = Cluster(folder, processes, folder)
    await cluster.start_all()
    return schema, cluster


async def _all_answered(traffic: Traffic, fakes: Fakes, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = all(
            {expected(t) for t in texts} <= {x for _, x in fakes.replies.get(key, [])}
            for key, texts in traffic.sent.items()
            if key[0] != "rest"
        )
        if done:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError("not every message was answered")


async def throughput(processes: int, messages: int, tmp: Path) -> float:
    fakes = Fakes(piece_delay=0.02)
    await fakes.start()
    schema, cluster = await _cluster(tmp / f"tp{processes}", processes, fakes, lease=10)
    try:
        traffic = Traffic(cluster, set(range(processes)))
        senders = 20
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(
                *(
                    traffic.whatsapp(client, f"1666{s:06d}", messages // senders)
                    for s in range(senders)
                )
            )
        finished = await _all_answered(traffic, fakes, 300)
        return (messages // senders * senders) / (finished - started)
    finally:
        cluster.stop()
        await fakes.close()
        await drop_schema(PG, schema)


async def chaos(messages: int, every: float, tmp: Path) -> dict[str, object]:
    fakes = Fakes()
    await fakes.start()
    schema, cluster = await _cluster(tmp / "chaos", 3, fakes, lease=3)
    live, stop = {0, 1, 2}, asyncio.Event()
    try:
        traffic = Traffic(cluster, live)
        chaos_task = asyncio.create_task(killer(cluster, live, every, stop))
        per = 8
        wa, tg = messages * 2 // 5 // per, messages * 3 // 10 // per
        rest = (messages - (wa + tg) * per) // per
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(
                *(traffic.whatsapp(client, f"1777{u:06d}", per) for u in range(wa)),
                *(traffic.telegram(client, 9000 + c, per) for c in range(tg)),
                *(traffic.rest(client, f"bench-{d}", per) for d in range(rest)),
            )
        await _all_answered(traffic, fakes, 300)
        stop.set()
        await chaos_task
        await asyncio.sleep(2)
        result: dict[str, object] = dict(verdict(traffic, fakes))
        result["messages"] = sum(len(t) for t in traffic.sent.values())
        result["kills"] = len(cluster.kills)
        result["recovery"] = await _recovery(schema, fakes, cluster.kills)
        return result
    finally:
        stop.set()
        cluster.stop()
        await fakes.close()
        await drop_schema(PG, schema)


async def _recovery(schema: str, fakes: Fakes, kills: list[float]) -> list[float]:
    """Seconds from the kill before a taken-over message's reply to that reply."""
    conn = await asyncpg.connect(PG)
    try:
        rows = await conn.fetch(
            f'SELECT channel, key FROM "{schema}".parley_inbox WHERE attempts > 1'
        )
    finally:
        await conn.close()
    texts = []
    for row in rows:
        if row["channel"] == "whatsapp":
            _, user, k = row["key"].split(".")
            texts.append((("whatsapp", user), expected(f"w{user}-{k}")))
        elif row["channel"] == "telegram":
            _, chat, message_id = row["key"].split(":")
            texts.append((("telegram", chat), expected(f"t{chat}-{int(message_id) - 1}")))
    delays = []
    for key, text in texts:
        times = [at for at, got in fakes.replies.get(key, []) if got == text]
        before = [kill for kill in kills if times and kill <= times[0]]
        if times and before:
            delays.append(times[0] - before[-1])
    return delays


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--kill-every", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = await chaos(args.messages, args.kill_every, Path(tmp))
        delays = result["recovery"]
        assert isinstance(delays, list)
        print("| measure | value |")
        print("|---|---|")
        print(f"| messages (WhatsApp, Telegram, REST) | {result['messages']} |")
        print(f"| processes killed (SIGKILL, every {args.kill_every:g} s) | {result['kills']} |")
        for name in ("lost", "duplicated", "out_of_order"):
            print(f"| {name.replace('_', ' ')} | {result[name]} |")
        if delays:
            median, worst = statistics.median(delays), max(delays)
            print(f"| claims taken over | {len(delays)} |")
            print(f"| recovery, median / max (s) | {median:.1f} / {worst:.1f} |")
        sys.stdout.flush()
        one = await throughput(1, 200, Path(tmp))
        print(f"| turns per second, 1 process | {one:.1f} |", flush=True)
        two = await throughput(2, 200, Path(tmp))
        print(f"| turns per second, 2 processes | {two:.1f} ({two / one:.2f}x) |")


if __name__ == "__main__":
    asyncio.run(main())
