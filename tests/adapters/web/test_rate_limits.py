"""Rate limits by client address as well as by caller, behind trusted proxies, and shared across
processes through Redis (HTTP and the socket); the socket's limiter forgets idle keys."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import redis.asyncio as redis

from parley.adapters.web.limits import Limiter

REDIS_URL = "redis://127.0.0.1:6379/0"
CONVERSATIONS = "/api/v1/conversations"


async def test_rotating_device_ids_meet_the_address_limit(serve):
    extra = {"web": {"rate_limit": 3, "rate_limit_per_address": 5}}
    async with serve(extra) as web:
        statuses = [
            (await web.http.get(CONVERSATIONS, headers=web.device(f"device-{i}"))).status_code
            for i in range(8)
        ]
        assert statuses == [200] * 5 + [429] * 3
        limited = await web.http.get(CONVERSATIONS, headers=web.device("device-new"))
        assert limited.json() == {"error": {"code": "rate_limited", "message": "Too Many Requests"}}


async def test_forwarded_for_counts_only_from_trusted_proxies(serve):
    extra = {"web": {"rate_limit": 0, "rate_limit_per_address": 2}}
    async with serve(extra) as web:  # loopback is a trusted proxy by default
        for client in ("203.0.113.1", "203.0.113.2"):
            headers = {"X-Forwarded-For": client}
            for _ in range(2):
                assert (await web.http.get(CONVERSATIONS, headers=headers)).status_code == 200
            assert (await web.http.get(CONVERSATIONS, headers=headers)).status_code == 429
    async with serve({"web": {**extra["web"], "trusted_proxies": []}}) as web:
        codes = [
            (
                await web.http.get(CONVERSATIONS, headers={"X-Forwarded-For": f"198.51.100.{i}"})
            ).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 429, 429]  # forged addresses do not escape the limit


async def test_socket_messages_count_by_address_too(serve, llm):
    extra = {"web": {"rate_limit": 10, "rate_limit_per_address": 3}}
    async with serve(extra) as web:
        frames = []
        for device in ("a-1", "a-2", "a-3", "a-4"):
            async with web.ws(device_id=device) as socket:
                await web.start_chat(socket)
                await web.send(socket, "user_message", text="hi")
                frames.append(await web.recv(socket))
                if frames[-1]["type"] != "error":
                    await web.recv_until(socket, "turn_complete")
        assert [f["type"] for f in frames[:3]] == ["turn_started"] * 3
        assert (frames[3]["type"], frames[3]["code"]) == ("error", "rate_limited")


async def _opened(web, socket) -> None:
    """Read the socket's opening frames (the greeting comes only with a new conversation)."""
    started = await web.recv(socket)
    assert started["type"] == "conversation_started"
    if not started["resumed"]:
        await web.recv_until(socket, "message_complete")


async def test_limits_are_shared_across_processes_with_redis(serve, redis_prefix, llm):
    namespace = redis_prefix.rstrip(":")
    extra = {
        "redis": {"url": REDIS_URL},
        "web": {"rate_limit": 3, "rate_limit_per_address": 100, "rate_limit_namespace": namespace},
    }
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(serve(extra))
        two = await stack.enter_async_context(serve(extra))
        assert (await one.http.get(CONVERSATIONS)).status_code == 200
        assert (await two.http.get(CONVERSATIONS)).status_code == 200
        assert (await one.http.get(CONVERSATIONS)).status_code == 200
        assert (await two.http.get(CONVERSATIONS)).status_code == 429
        # The socket's limit too: two messages on one process, the third on the other.
        texts = []
        for web in (one, two, one):
            async with web.ws(device_id="shared-socket") as socket:
                await _opened(web, socket)
                await web.send(socket, "user_message", text="hi")
                texts.append(await web.recv(socket))
                if texts[-1]["type"] != "error":
                    await web.recv_until(socket, "turn_complete")
        assert [f["type"] for f in texts] == ["turn_started"] * 3
        async with two.ws(device_id="shared-socket") as socket:
            await _opened(two, socket)
            await two.send(socket, "user_message", text="again")
            refused = await two.recv(socket)
            assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    client = redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{namespace}*")]
    await client.aclose()
    assert keys, "nothing was counted in Redis"


async def test_the_socket_limiter_forgets_idle_keys():
    limiter = Limiter(2, 0, window=0.05)
    for device in range(100):
        assert await limiter.allow(f"device-{device}", None)
    assert await limiter.allow("device-1", None)
    assert not await limiter.allow("device-1", None)  # two per window
    assert len(limiter._hits) == 100
    await asyncio.sleep(0.1)
    assert await limiter.allow("device-late", None)
    assert list(limiter._hits) == ["device-late"]
