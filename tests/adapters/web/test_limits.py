"""Limits and browser access: 413, 429, CORS, the socket's origin check, OpenAPI, web.enabled."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

SESSION = "/api/v1/chatbot/session"
SITE = "https://site.example"


async def test_oversized_bodies_are_413(serve):
    async with serve(extra={"web": {"max_body_bytes": 1024}}) as web:
        big = {"user_id": "u" * 2000}
        response = await web.http.post(SESSION, json=big)
        assert response.status_code == 413
        assert response.json() == {
            "success": False,
            "error": {"code": "payload_too_large", "message": "Request Entity Too Large"},
        }
        chat = await web.http.post("/chat/", json={"content": "x", "media_urls": ["x" * 2000]})
        assert chat.status_code == 413
        assert chat.json()["error"]["code"] == "payload_too_large"


async def test_too_many_requests_are_429_per_caller(serve):
    async with serve(extra={"web": {"rate_limit": 3}}) as web:
        for _ in range(3):
            assert (await web.http.get("/api/v1/conversations")).status_code == 200
        limited = await web.http.get("/api/v1/conversations")
        assert limited.status_code == 429
        assert limited.json() == {
            "error": {"code": "rate_limited", "message": "Too Many Requests"},
        }
        assert limited.headers["RateLimit-Limit"] == "3"
        session = await web.http.post(SESSION, json={"user_id": "u"})
        assert session.status_code == 429
        assert session.json()["success"] is False
        # Another device has its own budget; /health is not limited.
        other = await web.http.get("/api/v1/conversations", headers=web.device(web.OTHER))
        assert other.status_code == 200
        assert (await web.http.get("/health")).status_code == 200


async def test_socket_messages_are_rate_limited(serve, llm):
    async with serve(extra={"web": {"rate_limit": 2}}) as web, web.ws() as socket:
        await web.start_chat(socket)
        llm.gate = asyncio.Event()  # hold the replies until the third message was refused
        for text in ("one", "two", "three"):
            await socket.send(f'{{"type": "user_message", "data": {{"text": "{text}"}}}}')
        frames = await web.recv_until(socket, "error")
        assert frames[-1] == {
            "type": "error",
            "code": "rate_limited",
            "message": "too many messages; wait a moment",
        }
        assert "turn_complete" not in [f["type"] for f in frames]
        llm.gate.set()
        frames = await web.recv_until(socket, "turn_complete")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[-1]["turn_count"] == 2


async def test_cors_from_settings(serve):
    preflight = {
        "Origin": SITE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-device-id, content-type",
    }
    async with serve(extra={"web": {"cors_origins": [SITE]}}) as web:
        response = await web.http.options("/chat/", headers=preflight)
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == SITE
        assert "x-device-id" in response.headers["access-control-allow-headers"].lower()
        simple = await web.http.get("/api/v1/conversations", headers={"Origin": SITE})
        assert simple.headers["access-control-allow-origin"] == SITE
        evil = await web.http.get(
            "/api/v1/conversations", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in evil.headers
    async with serve() as web:
        response = await web.http.get("/api/v1/conversations", headers={"Origin": SITE})
        assert "access-control-allow-origin" not in response.headers


async def test_socket_origin_is_checked_against_cors_origins(serve):
    async with serve(extra={"web": {"cors_origins": [SITE]}}) as web:
        async with web.ws(origin="https://evil.example") as socket:
            assert (await web.recv(socket))["code"] == "forbidden_origin"
            with pytest.raises(ConnectionClosed) as closed:
                await web.recv(socket)
            assert closed.value.rcvd.code == 4403
        async with web.ws(origin=SITE) as socket:
            assert (await web.recv(socket))["type"] == "conversation_started"


async def test_openapi_lists_the_web_routes(serve):
    async with serve() as web:
        schema = (await web.http.get("/schema/openapi.json")).json()
        paths = set(schema["paths"])
        assert {
            "/api/v1/chatbot/session",
            "/api/v1/chatbot/session/{session_id}/message",
            "/api/v1/chatbot/session/{session_id}",
            "/chat",
            "/chat/stream",
            "/api/v1/conversations",
            "/api/v1/conversations/{conversation_id}/messages",
            "/api/v1/conversations/{conversation_id}",
        } <= paths
        parameters = schema["paths"]["/chat"]["post"]["parameters"]
        assert {"name": "X-Device-ID", "in": "header"}.items() <= next(
            p for p in parameters if p["name"] == "X-Device-ID"
        ).items()


async def test_web_can_be_disabled(serve):
    async with serve(extra={"web": {"enabled": False}}) as web:
        assert (await web.http.post("/chat/", json={"content": "hi"})).status_code == 404
        assert (await web.http.get("/health")).status_code == 200
