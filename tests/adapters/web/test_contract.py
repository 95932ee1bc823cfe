"""The web API's contract: the OpenAPI document tells the truth, deep JSON and big frames are
the client's mistakes (4xx / error frames, nothing logged above DEBUG), and schemathesis finds
no server error and no schema or status violation against the running server."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.exceptions import ConnectionClosed

SESSION = "/api/v1/chatbot/session"
DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "422", "429", "502", "503", "504"}


def _loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if r.levelno > 10]


async def test_openapi_documents_the_error_bodies_and_statuses(serve):
    async with serve() as web:
        schema = (await web.http.get("/schema/openapi.json")).json()
    bodies = schema["components"]["schemas"]
    assert bodies["ErrorBody"]["required"] == ["error"]
    assert bodies["ErrorDetail"]["required"] == ["code", "message"]
    assert set(bodies["SessionErrorBody"]["required"]) == {"error", "success"}
    seen: set[str] = set()
    operations = 0
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if path == "/health":
                continue
            operations += 1
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert errors, (method, path)
            seen |= set(errors)
            for status, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                expected = "SessionErrorBody" if path.startswith(SESSION) else "ErrorBody"
                assert ref == f"#/components/schemas/{expected}", (method, path, status)
            names = {p["name"]: p["required"] for p in operation.get("parameters", [])}
            if not path.startswith((SESSION, "/api/v1/admin/")) and "/users/{user_id}" not in path:
                assert names.get("X-Device-ID") is True, (method, path)
    assert operations >= 10
    assert seen == ERROR_STATUSES
    stream = schema["paths"]["/chat/stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    chat = schema["paths"]["/chat"]["post"]["responses"]
    assert {"400", "401", "413", "422", "429", "502", "504"} <= set(chat)


async def test_with_a_secret_the_device_id_is_optional(serve):
    async with serve({"web": {"auth_secret": "a-test-secret-of-at-least-32-bytes-for-hs256"}}) as w:
        schema = (await w.http.get("/schema/openapi.json")).json()
    parameters = schema["paths"]["/chat"]["post"]["parameters"]
    required = {p["name"]: p["required"] for p in parameters}
    assert (required["X-Device-ID"], required["Authorization"]) == (False, False)


async def test_deep_json_is_400_invalid_json_on_every_json_route(serve, caplog):
    caplog.set_level(logging.DEBUG)
    async with serve() as web:
        session_id = (await web.http.post(SESSION, json={"user_id": "u"})).json()["session_id"]
        routes = ["/chat/", "/chat/stream", SESSION, f"{SESSION}/{session_id}/message"]
        caplog.clear()
        for route in routes:
            for body in (DEEP, DEEP_OBJECT):
                response = await web.http.post(
                    route, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 400, (route, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_json", route
                if route.startswith(SESSION):
                    assert response.json()["success"] is False
        # Still serving, nothing stored from those bodies.
        assert (await web.http.post("/chat/", json={"content": "hi"})).status_code == 200
    assert _loud(caplog) == []


async def test_deep_json_frame_is_an_error_frame_and_the_socket_stays(serve, caplog):
    caplog.set_level(logging.DEBUG)
    async with serve() as web, web.ws() as socket:
        await web.start_chat(socket)
        caplog.clear()
        for _ in range(20):
            await socket.send(DEEP)
            frame = await web.recv(socket)
            assert (frame["type"], frame["code"]) == ("error", "invalid_json")
        await web.send(socket, "user_message", text="still there?")
        frames = await web.recv_until(socket, "turn_complete")
        assert any(f["type"] == "message_complete" for f in frames)
    assert _loud(caplog) == []


async def test_one_size_limit_for_bodies_and_frames_above_16_mib(serve):
    limit = 20 * 1024 * 1024
    extra = {"web": {"max_body_bytes": limit, "max_message_chars": 10}}
    async with serve(extra) as web, web.ws() as socket:
        await web.start_chat(socket)
        # 17 MiB: within web.max_body_bytes, so read and answered (the text is too long).
        text = "x" * (17 * 1024 * 1024)
        await socket.send(json.dumps({"type": "user_message", "data": {"text": text}}))
        frame = await web.recv(socket, wait=30)
        assert (frame["type"], frame["code"]) == ("error", "message_too_long")
        # 21 MiB: over the limit: an error frame, the socket stays open (as HTTP answers 413).
        over = "y" * (limit + 1024 * 1024)
        await socket.send(json.dumps({"type": "user_message", "data": {"text": over}}))
        frame = await web.recv(socket, wait=30)
        assert (frame["type"], frame["code"]) == ("error", "frame_too_large")
        await socket.send(b"\x00" * (limit + 1))  # binary audio over the limit: the same
        frame = await web.recv(socket, wait=30)
        assert frame["type"] == "error"
        assert frame["code"] in {"frame_too_large", "not_listening"}
        await web.send(socket, "user_message", text="hi")
        assert (await web.recv_until(socket, "turn_complete"))[-1]["type"] == "turn_complete"
        response = await web.http.post(
            "/chat/", content=over.encode(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"


async def test_frames_far_over_the_limit_close_with_1009(serve):
    async with serve({"web": {"max_body_bytes": 1024 * 1024}}) as web, web.ws() as socket:
        await web.start_chat(socket)
        await socket.send("z" * (3 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_lone_surrogates_are_stored_as_replacement_characters(
    serve, llm, caplog, database_settings
):
    caplog.set_level(logging.WARNING)
    # Valid JSON that Python decodes but cannot encode to UTF-8, and a NUL PostgreSQL refuses.
    lone = '"cut \\ud83d\\u0000"'
    headers = {"Content-Type": "application/json"}
    async with serve(database_settings) as web:
        chat = await web.http.post("/chat/", content=f'{{"content": {lone}}}', headers=headers)
        assert chat.status_code == 200, chat.text
        created = await web.http.post(SESSION, content=f'{{"user_id": {lone}}}', headers=headers)
        assert created.status_code == 200, created.text
        session_id = created.json()["session_id"]
        url = f"{SESSION}/{session_id}/message"
        reply = await web.http.post(url, content=f'{{"message": {lone}}}', headers=headers)
        assert reply.status_code == 200, reply.text
        async with web.ws() as socket:
            await web.start_chat(socket, greeting=False)
            await socket.send(f'{{"type": "user_message", "data": {{"text": {lone}}}}}')
            frames = await web.recv_until(socket, "turn_complete")
            assert not [f for f in frames if f["type"] == "error"], frames
        history = await web.http.get(
            f"/api/v1/conversations/{chat.json()['conversation_id']}/messages"
        )
        contents = [m["content"] for m in history.json()["messages"] if m["role"] == "user"]
        assert contents[0] == "cut \ufffd\ufffd"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
