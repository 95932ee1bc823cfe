"""``parley serve --workers N``: N real processes on one port, on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from parley.testing import ParleyProcess, run_parley

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SETTINGS = """
[database]
url = "{database}"
[redis]
url = "{redis}"
[llm]
provider = "echo"
[web]
rate_limit = 0
[conversation]
default_template = "solo"
[personas.alex]
name = "Alex"
system_prompt = "You are Alex."
[templates.solo]
personas = ["alex"]
[languages.en]
prompts.start = "Welcome!"
"""


def _folder(tmp_path: Path, database: str, redis: str = REDIS_URL) -> Path:
    """A settings folder: echo LLM, the database and Redis given (tests/adapters/web too)."""
    folder = tmp_path / "settings"
    folder.mkdir(exist_ok=True)
    (folder / "settings.toml").write_text(SETTINGS.format(database=database, redis=redis))
    return folder


def test_workers_refuse_sqlite_and_no_redis(tmp_path):
    folder = _folder(tmp_path, f"sqlite://{tmp_path / 'one.sqlite3'}", redis="")
    result = run_parley(["serve", "--settings", str(folder), "--workers", "2"])
    assert result.returncode == 2, result.stderr
    assert "database.url is SQLite" in result.stderr
    assert "redis.url is empty" in result.stderr
    assert "Parley listening" not in result.stdout


async def test_two_workers_answer_on_one_port(tmp_path, pg_schema_url):
    folder = _folder(tmp_path, pg_schema_url)
    served = ParleyProcess(folder, args=["--workers", "2"])  # its own process group
    served.start()
    base = served.url
    try:
        pids: set[int] = set()
        # Each request on a new connection: the kernel gives each to whichever worker accepts.
        for _ in range(600):
            async with httpx.AsyncClient(timeout=5) as client:
                try:
                    health = await client.get(f"{base}/health")
                except httpx.TransportError:
                    await asyncio.sleep(0.1)  # still starting
                    continue
            assert health.status_code == 200, health.text
            assert health.json()["down"] == [] and health.json()["redis"] == "ok"
            pids.add(health.json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and served.pid not in pids  # two workers, not the supervisor

        # A conversation served by both: every reply stored once, in order.
        device = {"X-Device-ID": "device-workers"}
        replies = []
        for i in range(8):
            async with httpx.AsyncClient(timeout=10, headers=device) as client:
                response = await client.post(f"{base}/chat/", json={"content": f"message {i}"})
                assert response.status_code == 200, response.text
                replies.append(response.json())
        assert [r["turn_count"] for r in replies] == list(range(1, 9))
        assert len({r["conversation_id"] for r in replies}) == 1

        # A worker killed outright: the other one goes on answering, and a new one replaces it.
        killed = pids.pop()
        os.kill(killed, signal.SIGKILL)
        seen: set[int] = set()
        for _ in range(600):
            async with httpx.AsyncClient(timeout=5, headers=device) as client:
                health = await client.get(f"{base}/health")
            assert health.status_code == 200
            seen.add(health.json()["pid"])
            if seen - pids - {killed}:
                break
            await asyncio.sleep(0.05)
        assert killed not in seen and seen - pids  # a new worker answers
        async with httpx.AsyncClient(timeout=10, headers=device) as client:
            response = await client.post(f"{base}/chat/", json={"content": "after the kill"})
        assert response.status_code == 200 and response.json()["turn_count"] == 9
    finally:
        returncode = served.stop()
    assert returncode == 0, served.err[-2000:]


def test_settle_heap_takes_the_built_app_out_of_full_collections():
    import gc

    from parley.serving import settle_heap

    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        settle_heap()
        # The modules and objects alive now are no longer walked by collections...
        assert gc.get_freeze_count() > 10_000
        tracked = len(gc.get_objects())
        assert tracked < gc.get_freeze_count()
        # ...and young collections run less often than Python's default 700 allocations.
        assert gc.get_threshold()[0] > 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
