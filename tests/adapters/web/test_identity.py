"""Identity: device ids, signed tokens (HS256 JWT), require_auth, session user_id checks."""

from __future__ import annotations

import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from parley.adapters.web.plugin import make_web_adapter
from parley.core import store
from parley.core.config import SettingsError
from parley.core.runtime import Runtime

CONVERSATIONS = "/api/v1/conversations"
SESSION = "/api/v1/chatbot/session"


SECRET = "a-test-secret-of-at-least-32-bytes-for-hs256"  # the same as conftest's


def _auth(**extra):
    return {"web": {"auth_secret": SECRET, **extra}}


async def _conversation_of(web, headers):
    response = await web.http.post("/chat/", json={"content": "hi"}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["conversation_id"]


async def test_without_a_secret_tokens_are_ignored(serve):
    async with serve() as web:
        headers = {**web.bearer(web.token("alice")), "X-Device-ID": web.DEVICE}
        conversation_id = await _conversation_of(web, headers)
        user = await store.get_or_create_user("web", web.DEVICE)
        assert (await store.get_conversation(conversation_id)).user_id == user.id
        alone = await web.http.get(CONVERSATIONS, headers={**web.bearer("x"), "X-Device-ID": ""})
        assert alone.status_code == 400


async def test_a_valid_token_identifies_the_user_on_any_device(serve):
    async with serve(extra=_auth()) as web:
        alice = web.bearer(web.token("alice"))
        conversation_id = await _conversation_of(web, {**alice, "X-Device-ID": web.DEVICE})
        user = await store.get_or_create_user("web", "jwt:alice")
        assert (await store.get_conversation(conversation_id)).user_id == user.id
        # The same token from another device (or none) is the same user and conversation.
        again = await _conversation_of(web, {**alice, "X-Device-ID": ""})
        assert again == conversation_id
        # The device id alone is someone else.
        anonymous = await web.http.get(CONVERSATIONS)
        assert anonymous.json()["conversations"] == []
        listed = await web.http.get(CONVERSATIONS, headers={**alice, "X-Device-ID": ""})
        assert [c["id"] for c in listed.json()["conversations"]] == [conversation_id]
        # Another signed-in user gets 404 on Alice's conversation.
        bob = {**web.bearer(web.token("bob")), "X-Device-ID": ""}
        url = f"{CONVERSATIONS}/{conversation_id}/messages"
        assert (await web.http.get(url, headers=bob)).status_code == 404


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda w: w.token("alice", ttl=-60), "token_expired"),
        (
            lambda w: w.token("alice", secret="another-secret-of-at-least-32-bytes!"),
            "invalid_token",
        ),
        (lambda w: "not.a.token", "invalid_token"),
        (
            lambda w: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
            "invalid_token",
        ),
        (
            lambda w: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
            "invalid_token",
        ),
    ],
    ids=["expired", "wrong-secret", "garbage", "no-exp", "no-sub"],
)
async def test_bad_tokens_are_401(serve, make, code):
    async with serve(extra=_auth()) as web:
        headers = web.bearer(make(web))
        for method, path, body in (
            ("GET", CONVERSATIONS, None),
            ("POST", "/chat/", {"content": "hi"}),
            ("POST", "/chat/stream", {"content": "hi"}),
            ("POST", SESSION, {"user_id": "alice"}),
        ):
            response = await web.http.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"]["code"] == code
        basic = await web.http.get(CONVERSATIONS, headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401


async def test_require_auth_refuses_device_ids(serve):
    async with serve(extra=_auth(require_auth=True)) as web:
        for method, path, body in (
            ("GET", CONVERSATIONS, None),
            ("POST", "/chat/", {"content": "hi"}),
            ("POST", SESSION, {"user_id": "x"}),
        ):
            response = await web.http.request(method, path, json=body)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "auth_required"
        ok = await web.http.get(CONVERSATIONS, headers=web.bearer(web.token("alice")))
        assert ok.status_code == 200


async def test_session_user_id_must_match_the_token(serve):
    async with serve(extra=_auth()) as web:
        alice = web.bearer(web.token("alice"))
        wrong = await web.http.post(SESSION, json={"user_id": "bob"}, headers=alice)
        assert wrong.status_code == 403
        assert wrong.json() == {
            "success": False,
            "error": {"code": "user_mismatch", "message": "user_id does not match the token"},
        }
        right = await web.http.post(SESSION, json={"user_id": "alice"}, headers=alice)
        assert right.status_code == 200
        session_id = right.json()["session_id"]
        # Bob cannot use Alice's session; a device (no token) is not identified at all.
        bob = web.bearer(web.token("bob"))
        url = f"{SESSION}/{session_id}/message"
        assert (await web.http.post(url, json={"message": "hi"}, headers=bob)).status_code == 404
        assert (await web.http.post(url, json={"message": "hi"})).status_code == 401
        assert (await web.http.post(url, json={"message": "hi"}, headers=alice)).status_code == 200


async def test_a_device_cannot_pose_as_a_token_user(serve):
    async with serve(extra=_auth()) as web:
        response = await web.http.get(CONVERSATIONS, headers={"X-Device-ID": "jwt:alice"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_device_id"


async def test_socket_identity(serve):
    async with serve(extra=_auth()) as web:
        async with web.ws(device_id="", token=web.token("alice")) as socket:
            started = await web.recv(socket)
            assert started["type"] == "conversation_started"
            conversation = await store.get_conversation(started["conversation_id"])
            user = await store.get_or_create_user("web", "jwt:alice")
            assert conversation.user_id == user.id
        cases = [
            ({"token": web.token("alice", ttl=-5)}, "token_expired", 4401),
            ({"token": "nope"}, "invalid_token", 4401),
            ({"device_id": ""}, "missing_device_id", 4400),
            ({"device_id": "bad id"}, "invalid_device_id", 4400),
        ]
        for query, code, close_code in cases:
            async with web.ws(**query) as socket:
                frame = await web.recv(socket)
                assert frame == {"type": "error", "code": code, "message": frame["message"]}
                with pytest.raises(ConnectionClosed) as closed:
                    await web.recv(socket)
                assert closed.value.rcvd.code == close_code


async def test_socket_require_auth(serve):
    async with serve(extra=_auth(require_auth=True)) as web:
        async with web.ws() as socket:
            assert (await web.recv(socket))["code"] == "auth_required"
            with pytest.raises(ConnectionClosed) as closed:
                await web.recv(socket)
            assert closed.value.rcvd.code == 4401
        bearer = {"Authorization": f"Bearer {web.token('alice')}"}
        async with web.ws(device_id="", headers=bearer) as socket:
            assert (await web.recv(socket))["type"] == "conversation_started"


def test_require_auth_needs_a_secret(make_settings):
    def make(web):
        return make_web_adapter(Runtime(make_settings({"web": web})).adapter_context)

    with pytest.raises(SettingsError, match=r"^web\.require_auth: "):
        make({"require_auth": True})
    with pytest.raises(SettingsError, match=r"^web\.max_message_chars: "):
        make({"max_message_chars": 0})
    with pytest.raises(SettingsError, match=r"^web\.rate_limit"):
        make({"rate_limit": "many"})
    with pytest.raises(SettingsError, match=r"^web\.auth_secret: .*32 bytes"):
        make({"auth_secret": "short"})
    assert make({"enabled": False}) is None
