"""Session API: exact shapes, message counting, ending, errors, ownership."""

from __future__ import annotations

import uuid

import httpx

from parley.core import store
from parley.core.providers import ProviderUnavailable
from parley.testing import Step

SESSION = "/api/v1/chatbot/session"
SECRET = "a-test-secret-of-at-least-32-bytes-for-hs256"


async def _create(web, template_id="solo", **headers):
    response = await web.http.post(
        SESSION, json={"user_id": "site-user-1", "template_id": template_id}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_message_and_end_with_exact_shapes(serve, llm):
    llm.push("Hello there, friend")
    async with serve() as web:
        created = await _create(web)
        session_id = created["session_id"]
        assert uuid.UUID(session_id)
        assert created == {
            "success": True,
            "session_id": session_id,
            "message": "Session created successfully",
            "template_id": "solo",
            "characters": [{"id": "alex", "name": "Alex"}],
            "greeting": "Hi there!",
        }
        conversation = await store.get_conversation(session_id)
        assert conversation.channel == "web-session"
        assert conversation.state["web_user_id"] == "site-user-1"

        response = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "hi"})
        assert response.status_code == 200
        body = response.json()
        message_id = body["message_id"]
        assert body == {
            "success": True,
            "response": "Hello there, friend",
            "session_id": session_id,
            "message_count": 1,
            "message_id": message_id,
            "character_id": "alex",
            "character_name": "Alex",
            "replies": [
                {
                    "message_id": message_id,
                    "character_id": "alex",
                    "character_name": "Alex",
                    "text": "Hello there, friend",
                    "status": "complete",
                }
            ],
            "conversation_ended": False,
            "reason": None,
        }
        second = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "more"})
        assert second.json()["message_count"] == 2

        ended = await web.http.delete(f"{SESSION}/{session_id}")
        assert ended.status_code == 200
        body = ended.json()
        assert body == {
            "success": True,
            "message": "Session ended successfully",
            "stats": {"duration_seconds": body["stats"]["duration_seconds"], "total_messages": 5},
        }
        assert isinstance(body["stats"]["duration_seconds"], float)
        assert body["stats"]["duration_seconds"] >= 0
        conversation = await store.get_conversation(session_id)
        assert (conversation.status, conversation.reason_ended) == ("ended", "user_ended")


async def test_ended_session_is_409_and_unknown_is_404(serve):
    async with serve() as web:
        session_id = (await _create(web))["session_id"]
        await web.http.delete(f"{SESSION}/{session_id}")
        late = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "hi"})
        assert late.status_code == 409
        assert late.json() == {
            "success": False,
            "error": {"code": "session_ended", "message": "the session has ended"},
        }
        again = await web.http.delete(f"{SESSION}/{session_id}")
        assert again.status_code == 409
        for missing in (str(uuid.uuid4()), "not-a-uuid"):
            response = await web.http.post(f"{SESSION}/{missing}/message", json={"message": "x"})
            assert response.status_code == 404
            assert response.json() == {
                "success": False,
                "error": {"code": "not_found", "message": "session not found"},
            }
            assert (await web.http.delete(f"{SESSION}/{missing}")).status_code == 404


async def test_termination_phrase_ends_the_session(serve):
    async with serve() as web:
        session_id = (await _create(web))["session_id"]
        response = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "Bye!"})
        body = response.json()
        assert body["response"] == "Take care!"
        assert (body["conversation_ended"], body["reason"]) == (True, "user_ended")
        late = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "hi"})
        assert late.status_code == 409


async def test_unknown_template_is_404(serve):
    async with serve() as web:
        response = await web.http.post(SESSION, json={"user_id": "u", "template_id": "nope"})
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": {"code": "unknown_template", "message": "unknown template 'nope'"},
        }


async def test_bad_bodies_are_422_with_success_false(serve):
    async with serve(extra={"web": {"max_message_chars": 10}}) as web:
        for body in ({}, {"user_id": 5, "template_id": "solo"}, {"template_id": "solo"}):
            response = await web.http.post(SESSION, json=body)
            assert response.status_code == 422, body
            assert response.json()["success"] is False
            assert response.json()["error"]["code"] == "validation_error"
        for language in ("<x>", "en\n", "Wg_IgZZuP-mG0cp5ni"):  # the last: longer than stored
            bad = await web.http.post(SESSION, json={"user_id": "u", "language": language})
            assert bad.status_code == 422, language
            assert bad.json()["error"]["message"].startswith("language: "), language
        not_json = await web.http.post(
            SESSION, content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert not_json.json()["success"] is False

        session_id = (await _create(web))["session_id"]
        url = f"{SESSION}/{session_id}/message"
        for body in ({"message": ""}, {"message": "   "}, {}, {"message": ["a"]}):
            response = await web.http.post(url, json=body)
            assert response.status_code == 422, body
            assert response.json()["success"] is False
        long = await web.http.post(url, json={"message": "x" * 11})
        assert long.status_code == 413
        assert long.json() == {
            "success": False,
            "error": {"code": "message_too_long", "message": "message: longer than 10 characters"},
        }


async def test_front_end_without_device_id(serve, llm):
    """The session front end sends only user_id/template_id, then message: no X-Device-ID."""
    llm.push("Hello from a session")
    async with serve() as web, httpx.AsyncClient(base_url=web.base) as bare:
        created = await bare.post(SESSION, json={"user_id": "device-a", "template_id": "solo"})
        assert created.status_code == 200, created.text
        session_id = created.json()["session_id"]
        reply = await bare.post(f"{SESSION}/{session_id}/message", json={"message": "hi"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["response"] == "Hello from a session"
        # user_id lives in its own namespace: "device-a" here is not the device "device-a".
        session_user = (await store.get_conversation(session_id)).user_id
        device_user = await store.get_or_create_user("web", "device-a")
        assert session_user != device_user.id
        assert (await store.get_or_create_user("web-session", "device-a")).id == session_user
        listed = await web.http.get("/api/v1/conversations")
        assert session_id not in [c["id"] for c in listed.json()["conversations"]]
        # The same user_id twice is the same user; another user_id is another user.
        again = await bare.post(SESSION, json={"user_id": "device-a"})
        other = await bare.post(SESSION, json={"user_id": "someone-else"})
        again_user = (await store.get_conversation(again.json()["session_id"])).user_id
        other_user = (await store.get_conversation(other.json()["session_id"])).user_id
        assert again_user == session_user != other_user
        # A device's own conversation id is not a session.
        chat = await web.http.post("/chat/", json={"content": "hello"})
        device_conversation = chat.json()["conversation_id"]
        response = await bare.post(
            f"{SESSION}/{device_conversation}/message", json={"message": "hi"}
        )
        assert response.status_code == 404
        assert (await bare.delete(f"{SESSION}/{device_conversation}")).status_code == 404
        ended = await bare.delete(f"{SESSION}/{session_id}")
        assert ended.status_code == 200


async def test_with_auth_secret_the_token_is_required_and_must_match(serve, llm):
    llm.push("Hi Alice")
    async with (
        serve(extra={"web": {"auth_secret": SECRET}}) as web,
        httpx.AsyncClient(base_url=web.base) as bare,
    ):
        missing = await bare.post(SESSION, json={"user_id": "alice"})
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "auth_required"
        assert missing.json()["success"] is False
        alice = web.bearer(web.token("alice"))
        mismatch = await bare.post(SESSION, json={"user_id": "bob"}, headers=alice)
        assert mismatch.status_code == 403
        assert mismatch.json()["error"]["code"] == "user_mismatch"
        expired = web.bearer(web.token("alice", ttl=-10))
        assert (await bare.post(SESSION, json={"user_id": "alice"}, headers=expired)).json()[
            "error"
        ]["code"] == "token_expired"
        created = await bare.post(SESSION, json={"user_id": "alice"}, headers=alice)
        assert created.status_code == 200, created.text
        session_id = created.json()["session_id"]
        # The token's user owns it: the same user as alice's signed-in chat.
        owner = (await store.get_conversation(session_id)).user_id
        assert owner == (await store.get_or_create_user("web", "jwt:alice")).id
        url = f"{SESSION}/{session_id}/message"
        assert (await bare.post(url, json={"message": "hi"})).status_code == 401
        bob = web.bearer(web.token("bob"))
        assert (await bare.post(url, json={"message": "hi"}, headers=bob)).status_code == 404
        assert (await bare.delete(f"{SESSION}/{session_id}", headers=bob)).status_code == 404
        assert (await store.get_conversation(session_id)).is_open
        reply = await bare.post(url, json={"message": "hi"}, headers=alice)
        assert reply.status_code == 200
        assert reply.json()["response"] == "Hi Alice"
        assert (await bare.delete(f"{SESSION}/{session_id}", headers=alice)).status_code == 200


async def test_provider_failure_is_502(serve, llm):
    llm.push(Step(["partial "], error=ProviderUnavailable("the LLM is down")))
    async with serve() as web:
        session_id = (await _create(web))["session_id"]
        response = await web.http.post(f"{SESSION}/{session_id}/message", json={"message": "hi"})
        assert response.status_code == 502
        assert response.json() == {
            "success": False,
            "retryable": True,
            "error": {"code": "provider_unavailable", "message": "the LLM is down"},
        }


async def test_user_id_must_not_be_blank_or_huge(serve):
    async with serve() as web:
        for user_id in ("", "   ", "x" * 257):
            response = await web.http.post(SESSION, json={"user_id": user_id})
            assert response.status_code == 422, user_id
            assert response.json()["success"] is False
            assert response.json()["error"]["code"] == "validation_error"


async def test_multi_character_session_names_each_reply(serve, llm):
    llm.push("Maya answers")
    llm.push("Leo answers")
    llm.push("Just Leo")
    async with serve() as web:
        created = await _create(web, template_id="duo")
        assert created["characters"] == [
            {"id": "maya", "name": "Maya"},
            {"id": "leo", "name": "Leo"},
        ]
        url = f"{SESSION}/{created['session_id']}/message"
        both = (await web.http.post(url, json={"message": "hello"})).json()
        assert both["response"] == "Maya answers\n\nLeo answers"
        assert [(r["character_name"], r["text"]) for r in both["replies"]] == [
            ("Maya", "Maya answers"),
            ("Leo", "Leo answers"),
        ]
        assert (both["character_id"], both["message_count"]) == ("maya", 1)
        leo = (await web.http.post(url, json={"message": "@Leo?"})).json()
        assert (leo["response"], leo["character_id"], leo["message_count"]) == (
            "Just Leo",
            "leo",
            2,
        )
