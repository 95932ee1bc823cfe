"""The chaos test: three real ``parley serve`` processes on one PostgreSQL schema + Redis.

WhatsApp and Telegram webhook deliveries are each sent twice, to two processes, and re-sent while
refused; REST requests carry an ``Idempotency-Key`` and are retried after connection errors; one
random process is SIGKILLed every few seconds and started again. Every inbound message must be
answered exactly once, in order per user, and nothing may be left pending.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from chaos_cluster import (
    Cluster,
    Traffic,
    killer,
    leftovers,
    verdict,
    write_settings,
)
from chaos_fakes import Fakes, expected

from parley.testing_services import create_schema, drop_schema

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def postgres_url() -> str:
    """The shared PostgreSQL (``PARLEY_TEST_POSTGRES_URL`` to use another)."""
    return os.environ.get("PARLEY_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


async def _answered(traffic: Traffic, fakes: Fakes, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        missing = [
            (platform, user)
            for (platform, user), texts in traffic.sent.items()
            if platform != "rest"
            and {expected(t) for t in texts}
            - {text for _, text in fakes.replies.get((platform, user), [])}
        ]
        if not missing:
            return
        await asyncio.sleep(0.2)


async def test_kills_lose_nothing_and_answer_once_in_order(tmp_path, postgres_url):
    fakes = Fakes()
    await fakes.start()
    schema, db = await create_schema(postgres_url, "parley_chaos")
    write_settings(tmp_path / "settings", db, REDIS, fakes.base, lease=3)
    cluster = Cluster(tmp_path / "settings", 3, tmp_path)
    live: set[int] = set()
    stop = asyncio.Event()
    try:
        await cluster.start_all()
        live.update({0, 1, 2})
        traffic = Traffic(cluster, live)
        traffic.kills_before = lambda k: k  # message k waits for k kills: kills land mid-traffic
        chaos = asyncio.create_task(killer(cluster, live, 4.0, stop))
        async with httpx.AsyncClient(timeout=30) as client:
            senders = [traffic.whatsapp(client, f"1555000{u:04d}", 6) for u in range(5)]
            senders += [traffic.telegram(client, 7000 + c, 6) for c in range(4)]
            senders += [traffic.rest(client, f"device-{d}", 4) for d in range(3)]
            try:
                await asyncio.wait_for(asyncio.gather(*senders), 150)
            except TimeoutError:
                raise AssertionError(f"deliveries stuck: {dict(traffic.sent)}") from None
        await _answered(traffic, fakes, 60)
        stop.set()
        await chaos
        for index in sorted(cluster.processes):
            await cluster.healthy(index)
        # Items whose holder died after answering are finished once their lease expires.
        for _ in range(150):
            left = await leftovers(postgres_url, schema)
            if not left["pending"] and not left["unfinished"]:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a late duplicate would show up here
        result = verdict(traffic, fakes)
    finally:
        stop.set()
        cluster.stop()
        await fakes.close()
        await drop_schema(postgres_url, schema)
    assert len(cluster.kills) >= 3, "the test must kill processes while they work"
    assert result == {"lost": 0, "duplicated": 0, "out_of_order": 0}, (result, left)
    assert left["pending"] == 0 and left["unfinished"] == 0, left


async def test_a_reply_cut_by_sigkill_is_kept_interrupted_and_hides_nothing(tmp_path, postgres_url):
    """The crash-leftover test: a process killed mid-reply; the client retries with its key."""
    fakes = Fakes(piece_delay=1.5)  # four pieces: the kill lands after two
    await fakes.start()
    schema, db = await create_schema(postgres_url, "parley_chaos")
    write_settings(tmp_path / "settings", db, REDIS, fakes.base, lease=3)
    cluster = Cluster(tmp_path / "settings", 1, tmp_path)
    device = {"X-Device-ID": "crash-device"}
    keyed = {**device, "Idempotency-Key": "crash-1"}
    try:
        await cluster.start_all()
        url = cluster.url(0)
        async with httpx.AsyncClient(timeout=30) as client:
            first = asyncio.create_task(
                client.post(f"{url}/chat/", json={"content": "tell me"}, headers=keyed)
            )
            for _ in range(200):
                if fakes.llm_calls:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(4.0)  # two pieces out, the partial text saved
            cluster.kill(0)
            with pytest.raises(httpx.TransportError):
                await first
            fakes.piece_delay = 0.01
            cluster.start(0)
            await cluster.healthy(0)
            again = await client.post(f"{url}/chat/", json={"content": "tell me"}, headers=keyed)
            assert again.status_code == 200, again.text
            conversation_id = again.json()["conversation_id"]
            later = await client.post(f"{url}/chat/", json={"content": "and then?"}, headers=device)
            assert later.status_code == 200, later.text
            history = await client.get(
                f"{url}/api/v1/conversations/{conversation_id}/messages", headers=device
            )
        left = await leftovers(postgres_url, schema)
    finally:
        cluster.stop()
        await fakes.close()
        await drop_schema(postgres_url, schema)
    assert history.status_code == 200, history.text
    page = history.json()
    rows = [(m["role"], m["content"], m["status"]) for m in page["messages"]]
    (cut,) = [row for row in rows if row[2] == "interrupted"]
    assert cut[0] == "assistant" and cut[1] and expected("tell me").startswith(cut[1]), rows
    assert cut[1] != expected("tell me"), rows  # what was produced before the kill, no more
    assert ("assistant", expected("tell me"), "complete") in rows  # answered after the restart
    assert [r for r in rows if r[0] == "user"].count(("user", "tell me", "complete")) == 1
    assert rows[-2:] == [
        ("user", "and then?", "complete"),
        ("assistant", expected("and then?"), "complete"),
    ], rows
    assert page.get("has_more") in (False, None), page
    assert left["pending"] == 0 and left["unfinished"] == 0, left
