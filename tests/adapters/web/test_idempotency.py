"""``Idempotency-Key`` on ``POST /chat/``, ``/chat/stream`` and the session message route: a repeat
of a key gets the first answer (or waits for it), never a second turn."""

from __future__ import annotations

import asyncio
import json

from parley.core import store


async def _messages(conversation_id: str) -> list[tuple[str, str, str]]:
    return [(m.role, m.content, m.status) for m in await store.list_messages(conversation_id)]


async def test_chat_repeat_gets_the_first_answer(serve, llm):
    llm.push("First answer")
    llm.push("Second answer")
    async with serve() as web:
        headers = {**web.device(), "Idempotency-Key": "k-1"}
        first = await web.http.post("/chat/", json={"content": "hi"}, headers=headers)
        again = await web.http.post("/chat/", json={"content": "hi"}, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json()["content"] == first.json()["content"] == "First answer"
        assert again.json()["message_id"] == first.json()["message_id"]
        assert again.json()["turn_count"] == 1
        assert len(llm.requests) == 1  # no second turn
        cid = first.json()["conversation_id"]
        assert [m for m in await _messages(cid) if m[0] == "user" or "answer" in m[1]] == [
            ("user", "hi", "complete"),
            ("assistant", "First answer", "complete"),
        ]
        other = await web.http.post(
            "/chat/", json={"content": "hi"}, headers={**web.device(), "Idempotency-Key": "k-2"}
        )
        assert other.json()["content"] == "Second answer"
        assert other.json()["turn_count"] == 2
        # Another device using the same key is another request.
        stranger = await web.http.post(
            "/chat/",
            json={"content": "hi"},
            headers={**web.device("dev-x"), "Idempotency-Key": "k-1"},
        )
        assert stranger.json()["content"] == "ok"
        assert len(llm.requests) == 3


async def test_concurrent_repeat_waits_for_the_first(serve, llm):
    llm.gate = asyncio.Event()
    llm.push("Only once")
    async with serve() as web:
        headers = {**web.device(), "Idempotency-Key": "same"}
        first = asyncio.create_task(web.http.post("/chat/", json={"content": "q"}, headers=headers))
        for _ in range(250):
            if llm.requests:
                break
            await asyncio.sleep(0.02)
        second = asyncio.create_task(
            web.http.post("/chat/", json={"content": "q"}, headers=headers)
        )
        await asyncio.sleep(0.3)
        assert not second.done()  # waits for the first turn's answer
        llm.gate.set()
        one, two = await first, await second
        assert one.json()["content"] == two.json()["content"] == "Only once"
        assert len(llm.requests) == 1


async def test_stream_repeat_replays_the_answer(serve, llm):
    llm.push("Streamed reply here")
    async with serve() as web:
        headers = {**web.device(), "Idempotency-Key": "s-1"}

        async def stream() -> list[dict]:
            async with web.http.stream(
                "POST", "/chat/stream", json={"content": "hey"}, headers=headers
            ) as response:
                assert response.status_code == 200
                return [
                    json.loads(line[5:])
                    async for line in response.aiter_lines()
                    if line.startswith("data:")
                ]

        first, again = await stream(), await stream()
        text = lambda events: "".join(e["content"] for e in events if not e["is_final"])  # noqa: E731
        assert text(first) == text(again) == "Streamed reply here"
        assert first[-1]["turn_count"] == again[-1]["turn_count"] == 1
        assert len(llm.requests) == 1


async def test_session_message_repeat(serve, llm):
    llm.push("Session answer")
    async with serve() as web:
        created = await web.http.post(
            "/api/v1/chatbot/session/", json={"user_id": "u"}, headers=web.device()
        )
        sid = created.json()["session_id"]
        headers = {**web.device(), "Idempotency-Key": "m-1"}
        url = f"/api/v1/chatbot/session/{sid}/message"
        first = await web.http.post(url, json={"message": "hello"}, headers=headers)
        again = await web.http.post(url, json={"message": "hello"}, headers=headers)
        assert first.json()["response"] == again.json()["response"] == "Session answer"
        assert first.json()["message_count"] == again.json()["message_count"] == 1
        assert len(llm.requests) == 1
        users = [m for m in await _messages(sid) if m[0] == "user"]
        assert users == [("user", "hello", "complete")]


async def test_bad_key_is_422(serve, llm):
    async with serve() as web:
        for bad in ("", "x" * 256, "caf\u00e9"):
            response = await web.http.post(
                "/chat/",
                json={"content": "hi"},
                headers=[*web.device().items(), ("Idempotency-Key", bad.encode())],
            )
            assert response.status_code == 422, bad
            assert response.json()["error"]["code"] == "validation_error"
        assert llm.requests == []
