"""Device chat: ``POST /chat/`` and ``POST /chat/stream`` (SSE read like a browser reads it)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.core import store
from parley.core.providers import LLMChunk, ProviderTimeout, Usage
from parley.testing import Step

DUO = {"conversation": {"default_template": "duo"}}


async def _sse_events(response) -> Any:
    """Yield each event's data as JSON, parsing lines the way EventSource does."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            assert field == "data", line
            data.append(value.removeprefix(" "))
    assert not data, "the stream ended inside an event"


async def _stream(web, body, headers=None) -> tuple[int, list[dict[str, Any]]]:
    async with web.http.stream("POST", "/chat/stream", json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, [response.json()]
        assert response.headers["content-type"].startswith("text/event-stream")
        return 200, [event async for event in _sse_events(response)]


def _ts(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None
    return moment


async def test_chat_replies_with_content_and_who_answered(serve, llm):
    llm.push("Nice to meet you")
    async with serve() as web:
        response = await web.http.post(
            "/chat/", json={"content": "hi", "media_urls": [], "audio_urls": []}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["content"] == "Nice to meet you"
        assert (body["character_id"], body["character_name"]) == ("alex", "Alex")
        assert body["turn_count"] == 1
        assert body["conversation_ended"] is False
        message = await store.get_message(body["message_id"])
        assert (message.content, message.conversation_id) == (
            "Nice to meet you",
            body["conversation_id"],
        )
        # The device keeps its conversation across requests.
        again = (await web.http.post("/chat/", json={"content": "and again"})).json()
        assert again["conversation_id"] == body["conversation_id"]
        assert again["turn_count"] == 2
        conversation = await store.get_conversation(body["conversation_id"])
        assert (conversation.channel, conversation.template_id) == ("web", "solo")


async def test_chat_without_device_or_token_is_400(serve):
    async with serve() as web:
        for headers in ({"X-Device-ID": ""}, {"X-Device-ID": "bad id!"}):
            for path in ("/chat/", "/chat/stream"):
                response = await web.http.post(path, json={"content": "hi"}, headers=headers)
                assert response.status_code == 400, (path, headers)
                assert response.json()["error"]["code"] in (
                    "missing_device_id",
                    "invalid_device_id",
                )


async def test_chat_bad_input(serve):
    async with serve(extra={"web": {"max_message_chars": 20, "max_body_bytes": 2048}}) as web:
        cases = [
            ({}, 422, "validation_error"),
            ({"content": "  "}, 422, "validation_error"),
            ({"content": 3}, 422, "validation_error"),
            ({"content": "hi", "media_urls": "x"}, 422, "validation_error"),
            ({"content": "hi", "media_urls": ["ftp://x/y.png"]}, 422, "validation_error"),
            ({"content": "hi", "media_urls": ["https://x/a.png"] * 11}, 422, "validation_error"),
            ({"content": "hi", "audio_urls": ["https://x/a.ogg"]}, 422, "audio_not_supported"),
            ({"content": "x" * 21}, 413, "message_too_long"),
            ({"content": "x" * 3000}, 413, "payload_too_large"),
        ]
        for path in ("/chat/", "/chat/stream"):
            for body, status, code in cases:
                response = await web.http.post(path, json=body)
                assert response.status_code == status, (path, body, response.text)
                assert response.json()["error"]["code"] == code, (path, body)
                assert set(response.json()) == {"error"}
        audio = await web.http.post("/chat/", json={"content": "hi", "audio_urls": ["https://a"]})
        assert "voice input is not available" in audio.json()["error"]["message"]
        assert await store.list_conversations((await _user(web.DEVICE)).id) == []


async def test_media_url_rules_are_the_request_types(serve):
    """Counts, schemes and lengths of URLs are checked by the request's types: a 422 naming the
    field, and the OpenAPI document states the counts (Litestar leaves out a list item's rules)."""
    async with serve() as web:
        long_url = "https://img.example/" + "a" * 4096
        refused = await web.http.post("/chat/", json={"content": "hi", "media_urls": [long_url]})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "validation_error"
        assert refused.json()["error"]["message"].startswith("media_urls[0]: ")
        data_url = "data:image/png;base64," + "A" * 8000  # bounded by web.max_body_bytes only
        body = {"content": "hi", "media_urls": [data_url]}
        assert (await web.http.post("/chat/", json=body)).status_code == 200
        two = await web.http.post("/chat/", json={"content": "hi", "audio_urls": ["https://a"] * 2})
        assert two.json()["error"]["message"].startswith("audio_urls: ")
        schema = (await web.http.get("/schema/openapi.json")).json()
    request = schema["components"]["schemas"]["ChatRequest"]["properties"]
    assert request["media_urls"]["maxItems"] == 10
    assert request["audio_urls"]["maxItems"] == 1


async def _user(device_id):
    return await store.get_or_create_user("web", device_id)


async def test_media_urls_reach_the_llm_as_image_parts(serve, llm):
    async with serve() as web:
        body = {"content": "what is this?", "media_urls": ["https://img.example/cat.png"]}
        assert (await web.http.post("/chat/", json=body)).status_code == 200
        last = llm.requests[-1].messages[-1]
        assert last == {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}},
            ],
        }
        image_only = {"content": "", "media_urls": ["data:image/png;base64,AAAA"]}
        assert (await web.http.post("/chat/", json=image_only)).status_code == 200


async def test_expired_device_conversation_starts_a_new_one(serve):
    async with serve() as web:
        first = (await web.http.post("/chat/", json={"content": "hi"})).json()["conversation_id"]
        past = datetime.now(UTC) - timedelta(seconds=1)
        await store.update_conversation(first, expires_at=past)
        second = (await web.http.post("/chat/", json={"content": "hi"})).json()
        assert second["conversation_id"] != first
        assert second["turn_count"] == 1
        old = await store.get_conversation(first)
        assert (old.status, old.reason_ended) == ("ended", "expired")
        await store.update_conversation(second["conversation_id"], expires_at=past)
        status, events = await _stream(web, {"content": "hi"})
        assert status == 200
        assert events[-1]["conversation_id"] not in (first, second["conversation_id"])


async def test_ended_device_conversation_starts_a_new_one(serve):
    async with serve() as web:
        bye = (await web.http.post("/chat/", json={"content": "goodbye"})).json()
        assert (bye["content"], bye["conversation_ended"], bye["reason"]) == (
            "Take care!",
            True,
            "user_ended",
        )
        after = (await web.http.post("/chat/", json={"content": "hello again"})).json()
        assert after["conversation_id"] != bye["conversation_id"]


async def test_chat_multi_character_and_mentions(serve, llm):
    llm.push("Maya here")
    llm.push("Leo here")
    llm.push("Only Leo")
    async with serve(extra=DUO) as web:
        both = (await web.http.post("/chat/", json={"content": "hello all"})).json()
        assert both["content"] == "Maya here\n\nLeo here"
        assert [(r["character_id"], r["character_name"], r["text"]) for r in both["replies"]] == [
            ("maya", "Maya", "Maya here"),
            ("leo", "Leo", "Leo here"),
        ]
        assert len({r["message_id"] for r in both["replies"]}) == 2
        leo = (await web.http.post("/chat/", json={"content": "@Leo what now?"})).json()
        assert [r["character_id"] for r in leo["replies"]] == ["leo"]
        assert (leo["content"], leo["character_name"]) == ("Only Leo", "Leo")
        # Leo saw Maya's earlier reply labelled with her name.
        assert {"role": "user", "content": "[Maya]: Maya here"} in llm.requests[-1].messages


async def test_chat_provider_failure_is_an_error(serve, llm):
    llm.push(Step(["half "], error=ProviderTimeout("the LLM timed out")))
    async with serve() as web:
        response = await web.http.post("/chat/", json={"content": "hi"})
        assert response.status_code == 504
        assert response.json() == {
            "retryable": True,
            "error": {"code": "provider_timeout", "message": "the LLM timed out"},
        }


# -- SSE -------------------------------------------------------------------------------------


async def test_stream_sends_each_piece_then_a_final_line(serve, llm):
    llm.push(Step(["Hel", "lo ", "you"]))
    async with serve() as web:
        status, events = await _stream(web, {"content": "hi", "media_urls": [], "audio_urls": []})
        assert status == 200
        pieces, final = events[:-1], events[-1]
        assert [e["content"] for e in pieces] == ["Hel", "lo ", "you"]
        for event in pieces:
            assert event["is_final"] is False
            _ts(event["timestamp"])
            assert (event["character_id"], event["character_name"]) == ("alex", "Alex")
        message_id = pieces[0]["message_id"]
        assert {e["message_id"] for e in pieces} == {message_id}
        assert final == {
            "content": "",
            "timestamp": final["timestamp"],
            "is_final": True,
            "conversation_id": final["conversation_id"],
            "turn_count": 1,
            "conversation_ended": False,
            "reason": None,
        }
        assert (await store.get_message(message_id)).content == "Hello you"


async def test_stream_raw_lines_are_single_data_lines(serve, llm):
    llm.push(Step(["a", "b"]))
    async with (
        serve() as web,
        web.http.stream("POST", "/chat/stream", json={"content": "hi"}) as response,
    ):
        raw = (await response.aread()).decode()
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b]
    assert len(blocks) == 3
    for block in blocks:
        assert block.startswith("data: {") and "\n" not in block


class HeldLLM:
    """Streams a first piece, then waits for ``release`` before the rest."""

    name = "held"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def stream(self, request):
        yield LLMChunk(text="First ")
        await self.release.wait()
        yield LLMChunk(text="second")
        yield LLMChunk(usage=Usage(1, 2))


async def test_stream_first_piece_arrives_before_the_reply_is_finished(serve):
    held = HeldLLM()
    async with (
        serve(provider=held) as web,
        web.http.stream("POST", "/chat/stream", json={"content": "hi"}) as response,
    ):
        events = _sse_events(response)
        first = await asyncio.wait_for(anext(events), 5)
        assert (first["content"], first["is_final"]) == ("First ", False)
        stored = await store.get_message(first["message_id"])
        assert (stored.status, stored.content) == ("pending", "")  # still being written
        held.release.set()
        rest = [event async for event in events]
        assert [e["content"] for e in rest] == ["second", ""]
        assert rest[-1]["is_final"] is True
        assert (await store.get_message(first["message_id"])).status == "complete"


async def test_stream_failure_mid_stream_sends_an_error_line(serve, llm):
    llm.push(Step(["partial ", "reply "], error=ProviderTimeout("the LLM timed out")))
    async with serve() as web:
        status, events = await _stream(web, {"content": "hi"})
        assert status == 200
        assert [e.get("content") for e in events[:2]] == ["partial ", "reply "]
        error = events[-1]
        assert len(events) == 3
        assert error == {
            "error": {"code": "provider_timeout", "message": "the LLM timed out"},
            "is_final": True,
            "timestamp": error["timestamp"],
        }
        failed = await store.get_message(events[0]["message_id"])
        assert (failed.status, failed.content) == ("failed", "partial reply ")


async def test_stream_multi_character_pieces_name_their_character(serve, llm):
    llm.push("Maya speaks")
    llm.push("Leo speaks")
    async with serve(extra=DUO) as web:
        status, events = await _stream(web, {"content": "hello"})
        assert status == 200
        pieces = events[:-1]
        assert "".join(e["content"] for e in pieces if e["character_id"] == "maya") == (
            "Maya speaks"
        )
        assert "".join(e["content"] for e in pieces if e["character_id"] == "leo") == "Leo speaks"
        order = [e["character_name"] for e in pieces]
        assert order == sorted(order, key=["Maya", "Leo"].index)  # Maya first, then Leo
        status, events = await _stream(web, {"content": "maya, your view?"})
        assert status == 200
        assert {e["character_id"] for e in events[:-1]} == {"maya"}


async def test_stream_closed_by_the_client_stores_the_reply_as_interrupted(serve):
    held = HeldLLM()
    async with serve(provider=held) as web:
        async with web.http.stream("POST", "/chat/stream", json={"content": "hi"}) as response:
            first = await asyncio.wait_for(anext(_sse_events(response)), 5)
        message_id = first["message_id"]
        for _ in range(300):
            message = await store.get_message(message_id)
            if message.status != "pending":
                break
            await asyncio.sleep(0.01)
        assert (message.status, message.content) == ("interrupted", "First ")
