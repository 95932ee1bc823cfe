"""A chaos harness: real ``parley serve`` processes (:class:`parley.testing.ParleyProcess`) on one
PostgreSQL schema + Redis, the fake platforms of :mod:`chaos_fakes`, deliveries repeated to
several processes, processes killed with SIGKILL (by their own pid).

Used by tests/test_chaos.py (about a minute) and bench/chaos.py (500+ messages, figures).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from chaos_fakes import PHONE_ID, TG_SECRET, TG_TOKEN, WA_SECRET, WA_TOKEN, Fakes, expected

from parley.testing import ParleyProcess

SETTINGS = """
[server]
host = "127.0.0.1"
[database]
url = "{db}"
[redis]
url = "{redis}"
lock_ttl = 5
[inbox]
lease = {lease}
poll_interval = 0.2
[llm]
provider = "openai"
base_url = "{fake}/v1"
api_key = "chaos"
model = "fake"
max_retries = 0
timeout = 20
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
termination_phrases = ["goodbye-never-said"]
[whatsapp]
enabled = true
verify_token = "chaos-verify"
app_secret = "{wa_secret}"
access_token = "{wa_token}"
phone_number_id = "{phone}"
graph_base = "{fake}/v21.0"
reply_voice = "never"
max_retries = 1
retry_backoff = 0.05
drain_timeout = 1
[telegram]
enabled = true
token = "{tg_token}"
api_base = "{fake}"
mode = "webhook"
webhook_url = "https://chaos.example.test/webhooks/telegram"
webhook_secret = "{tg_secret}"
reply_voice = "never"
"""


class Cluster:
    """``count`` ``parley serve`` processes, each on a port of its own (kept across restarts),
    writing to ``logs``; killed with SIGKILL by their own pid."""

    def __init__(self, folder: Path, count: int, logs: Path) -> None:
        self.logs = logs
        self.processes = {
            index: ParleyProcess(folder, logs=logs, name=f"parley-{index}")
            for index in range(count)
        }
        self.kills: list[float] = []

    def start(self, index: int) -> None:
        self.processes[index].start()

    async def start_all(self) -> None:
        """The first alone (it applies the migrations), then the others together; all healthy."""
        self.start(0)
        await self.healthy(0)
        others = range(1, len(self.processes))
        for index in others:
            self.start(index)
        for index in others:
            await self.healthy(index)

    async def healthy(self, index: int, within: float = 60.0) -> None:
        await self.processes[index].healthy(within)

    def url(self, index: int) -> str:
        return self.processes[index].url

    def kill(self, index: int) -> None:
        self.processes[index].kill()
        self.kills.append(time.monotonic())

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def write_settings(folder: Path, db: str, redis: str, fake: str, lease: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.toml").write_text(
        SETTINGS.format(
            db=db,
            redis=redis,
            fake=fake,
            lease=lease,
            wa_secret=WA_SECRET,
            wa_token=WA_TOKEN,
            phone=PHONE_ID,
            tg_token=TG_TOKEN,
            tg_secret=TG_SECRET,
        )
    )


class Traffic:
    """Sends each user's messages in order, each delivery twice (to two processes), re-sent while
    refused; REST requests carry an Idempotency-Key and are retried after errors."""

    def __init__(self, cluster: Cluster, live: set[int]) -> None:
        self.cluster, self.live = cluster, live
        self.sent: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.rest_answers: dict[str, list[str]] = defaultdict(list)
        self.sent_at: dict[str, float] = {}
        self.refusals = 0
        self.kills_before: Any = None
        """Optional ``k -> kills``: message ``k`` of a user waits until that many kills happened."""
        self._updates = itertools.count(1)

    async def _paced(self, k: int) -> None:
        if self.kills_before is None:
            return
        for _ in range(6000):  # at most 5 minutes
            if len(self.cluster.kills) >= self.kills_before(k):
                return
            await asyncio.sleep(0.05)

    def _targets(self) -> list[int]:
        ports = sorted(self.live) or [0]
        start = next(self._updates) % len(ports)
        return ports[start:] + ports[:start]

    async def _deliver(
        self, client: httpx.AsyncClient, path: str, body: bytes, headers: dict
    ) -> None:
        """POST to two processes; until one answers 200, keep re-sending (as platforms do)."""
        delivered = False
        while not delivered:
            for index in self._targets()[:2]:
                try:
                    response = await client.post(
                        self.cluster.url(index) + path, content=body, headers=headers
                    )
                    delivered = delivered or response.status_code == 200
                    if response.status_code != 200:
                        self.refusals += 1
                except httpx.TransportError:
                    self.refusals += 1
            if not delivered:
                await asyncio.sleep(0.2)

    async def whatsapp(self, client: httpx.AsyncClient, user: str, count: int) -> None:
        for k in range(count):
            await self._paced(k)
            text = f"w{user}-{k}"
            message = {
                "from": user,
                "id": f"wamid.{user}.{k}",
                "timestamp": "1718000000",
                "type": "text",
                "text": {"body": text},
            }
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "1555", "phone_number_id": PHONE_ID},
                "contacts": [{"profile": {"name": "U"}, "wa_id": user}],
                "messages": [message],
            }
            body = json.dumps(
                {
                    "object": "whatsapp_business_account",
                    "entry": [{"id": "1", "changes": [{"value": value, "field": "messages"}]}],
                }
            ).encode()
            signature = "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
            self.sent[("whatsapp", user)].append(text)
            self.sent_at[text] = time.monotonic()
            await self._deliver(
                client,
                "/webhooks/whatsapp",
                body,
                {"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            )

    async def telegram(self, client: httpx.AsyncClient, chat: int, count: int) -> None:
        for k in range(count):
            await self._paced(k)
            text = f"t{chat}-{k}"
            update = {
                "update_id": chat * 1000 + k,
                "message": {
                    "message_id": k + 1,
                    "date": int(time.time()),
                    "text": text,
                    "from": {"id": chat, "is_bot": False, "first_name": "T"},
                    "chat": {"id": chat, "type": "private", "first_name": "T"},
                },
            }
            self.sent[("telegram", str(chat))].append(text)
            self.sent_at[text] = time.monotonic()
            await self._deliver(
                client,
                "/webhooks/telegram",
                json.dumps(update).encode(),
                {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
            )

    async def rest(self, client: httpx.AsyncClient, device: str, count: int) -> None:
        for k in range(count):
            await self._paced(k)
            text = f"r{device}-{k}"
            self.sent[("rest", device)].append(text)
            self.sent_at[text] = time.monotonic()
            headers = {"X-Device-ID": device, "Idempotency-Key": f"key-{device}-{k}"}
            while True:
                index = self._targets()[0]
                try:
                    response = await client.post(
                        self.cluster.url(index) + "/chat/", json={"content": text}, headers=headers
                    )
                    if response.status_code == 200:
                        self.rest_answers[device].append(response.json()["content"])
                        break
                    self.refusals += 1
                except httpx.TransportError:
                    self.refusals += 1
                await asyncio.sleep(0.2)


async def killer(cluster: Cluster, live: set[int], every: float, stop: asyncio.Event) -> None:
    """Every ``every`` seconds SIGKILL one random process and start it again."""
    import random

    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except TimeoutError:
            pass
        index = random.choice(sorted(cluster.processes))
        live.discard(index)
        cluster.kill(index)
        cluster.start(index)
        asyncio.get_running_loop().create_task(_back(cluster, live, index))


async def _back(cluster: Cluster, live: set[int], index: int) -> None:
    try:
        await cluster.healthy(index)
        live.add(index)
    except (RuntimeError, TimeoutError):
        pass


def verdict(traffic: Traffic, fakes: Fakes) -> dict[str, Any]:
    """lost / duplicated / out of order, per platform, from what the fakes received."""
    lost = duplicated = out_of_order = 0
    for (platform, user), texts in traffic.sent.items():
        want = [expected(t) for t in texts]
        if platform == "rest":
            got = traffic.rest_answers[user]
        else:
            got = [text for _, text in fakes.replies.get((platform, user), [])]
        lost += len([w for w in want if w not in got])
        duplicated += len(got) - len(set(got))
        seen = [w for w in dict.fromkeys(got) if w in want]
        out_of_order += sum(1 for a, b in itertools.pairwise(seen) if want.index(a) > want.index(b))
    return {"lost": lost, "duplicated": duplicated, "out_of_order": out_of_order}


async def leftovers(db_url_plain: str, schema: str) -> dict[str, int]:
    """Messages still ``pending`` and inbox items unfinished, straight from the database."""
    conn = await asyncpg.connect(db_url_plain)
    try:
        pending = await conn.fetchval(
            f"SELECT count(*) FROM \"{schema}\".parley_message WHERE status = 'pending'"
        )
        unfinished = await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".parley_inbox '
            "WHERE status IN ('queued', 'claimed') AND channel <> 'job'"
        )
        retried = await conn.fetchval(
            f"SELECT count(*) FROM \"{schema}\".parley_inbox WHERE attempts > 1 AND channel <> 'job'"
        )
    finally:
        await conn.close()
    return {"pending": int(pending), "unfinished": int(unfinished), "retried": int(retried)}
