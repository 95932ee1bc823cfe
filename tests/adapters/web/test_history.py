"""History: listing conversations, reading messages with ``after``, erasing a conversation."""

from __future__ import annotations

import uuid

from parley.core import store

CONVERSATIONS = "/api/v1/conversations"


async def _chat(web, text, headers=None):
    response = await web.http.post("/chat/", json={"content": text}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_conversations_newest_first_with_exact_fields(serve):
    async with serve() as web:
        first = (await _chat(web, "hi"))["conversation_id"]
        await _chat(web, "goodbye")  # ends the first conversation
        second = (await _chat(web, "hello again"))["conversation_id"]
        await _chat(web, "not mine", headers=web.device(web.OTHER))
        response = await web.http.get(CONVERSATIONS)
        assert response.status_code == 200
        body = response.json()
        assert [c["id"] for c in body["conversations"]] == [second, first]
        assert body["next_before"] is None
        old = body["conversations"][1]
        assert old == {
            "id": first,
            "template": "solo",
            "template_id": "solo",
            "channel": "web",
            "language": "en",
            "status": "ended",
            "started_at": old["started_at"],
            "ended_at": old["ended_at"],
            "last_activity_at": old["last_activity_at"],
            "reason_ended": "user_ended",
            "turn_count": 2,
            "message_count": 5,  # greeting, hi, its reply, goodbye, the end prompt
        }
        assert old["ended_at"] is not None
        newest = body["conversations"][0]
        assert (newest["status"], newest["ended_at"], newest["turn_count"]) == ("open", None, 1)


async def test_list_conversations_pages_with_before(serve):
    async with serve() as web:
        ids = []
        for _ in range(3):
            ids.append((await _chat(web, "hi"))["conversation_id"])
            await _chat(web, "bye")
        page = (await web.http.get(CONVERSATIONS, params={"limit": 2})).json()
        assert [c["id"] for c in page["conversations"]] == [ids[2], ids[1]]
        assert page["next_before"] is not None
        rest = (
            await web.http.get(CONVERSATIONS, params={"limit": 2, "before": page["next_before"]})
        ).json()
        assert [c["id"] for c in rest["conversations"]] == [ids[0]]
        assert rest["next_before"] is None
        by_id = (await web.http.get(CONVERSATIONS, params={"before": ids[1]})).json()
        assert [c["id"] for c in by_id["conversations"]] == [ids[0]]
        for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before": "yesterday"}):
            response = await web.http.get(CONVERSATIONS, params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == "validation_error"


async def test_messages_oldest_first_and_resume_with_after(serve, llm):
    llm.push("one")
    llm.push("two")
    async with serve() as web:
        conversation_id = (await _chat(web, "first"))["conversation_id"]
        url = f"{CONVERSATIONS}/{conversation_id}/messages"
        body = (await web.http.get(url)).json()
        messages = body["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("assistant", "Hi there!"),
            ("user", "first"),
            ("assistant", "one"),
        ]
        assert body["has_more"] is False
        reply = messages[2]
        assert reply == {
            "id": reply["id"],
            "role": "assistant",
            "name": "Alex",
            "character_id": "alex",
            "content": "one",
            "status": "complete",
            "created_at": reply["created_at"],
        }
        await _chat(web, "second")
        newer = (await web.http.get(url, params={"after": reply["id"]})).json()["messages"]
        assert [m["content"] for m in newer] == ["second", "two"]
        assert not {m["id"] for m in newer} & {m["id"] for m in messages}
        last = newer[-1]["id"]
        assert (await web.http.get(url, params={"after": last})).json()["messages"] == []
        page = (await web.http.get(url, params={"limit": 2})).json()
        assert ([m["content"] for m in page["messages"]], page["has_more"]) == (
            ["Hi there!", "first"],
            True,
        )
        unknown = await web.http.get(url, params={"after": str(uuid.uuid4())})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["code"] == "unknown_message"
        assert (await web.http.get(url, params={"limit": 501})).status_code == 422


async def test_a_reply_being_written_ends_the_page(serve):
    async with serve() as web:
        conversation_id = (await _chat(web, "hi"))["conversation_id"]
        pending = await store.add_message(conversation_id, "assistant", "", status="pending")
        queued = await store.add_message(conversation_id, "user", "later", status="pending")
        url = f"{CONVERSATIONS}/{conversation_id}/messages"
        body = (await web.http.get(url)).json()
        ids = [m["id"] for m in body["messages"]]
        assert pending.id not in ids and queued.id not in ids
        assert [m["content"] for m in body["messages"]][-1] == "ok"
        assert body["has_more"] is True


async def test_a_reply_cut_by_a_crash_hides_nothing_after_it(serve):
    async with serve() as web:
        conversation_id = (await _chat(web, "hi"))["conversation_id"]
        # A crash left this reply pending; the conversation went on.
        cut = await store.add_message(conversation_id, "assistant", "Half a", status="pending")
        later = await _chat(web, "still there?")
        url = f"{CONVERSATIONS}/{conversation_id}/messages"
        body = (await web.http.get(url)).json()
        contents = [(m["content"], m["status"]) for m in body["messages"]]
        assert contents[-3:] == [
            ("Half a", "pending"),
            ("still there?", "complete"),
            ("ok", "complete"),
        ]
        assert body["has_more"] is False
        assert later["message_id"] == body["messages"][-1]["id"]
        resumed = (await web.http.get(url, params={"after": cut.id})).json()
        assert [m["content"] for m in resumed["messages"]] == ["still there?", "ok"]


async def test_delete_erases_the_conversation_and_its_messages(serve):
    async with serve() as web:
        conversation_id = (await _chat(web, "hi"))["conversation_id"]
        assert await store.count_messages(conversation_id) == 3
        response = await web.http.delete(f"{CONVERSATIONS}/{conversation_id}")
        assert response.status_code == 200
        assert response.json() == {"deleted": True, "conversation_id": conversation_id}
        assert await store.get_conversation(conversation_id) is None
        assert await store.count_messages(conversation_id) == 0
        gone = await web.http.get(f"{CONVERSATIONS}/{conversation_id}/messages")
        assert gone.status_code == 404
        assert (await web.http.delete(f"{CONVERSATIONS}/{conversation_id}")).status_code == 404
        # The device simply gets a new conversation next time.
        assert (await _chat(web, "hi again"))["conversation_id"] != conversation_id


async def test_another_device_gets_404_everywhere(serve):
    async with serve() as web:
        conversation_id = (await _chat(web, "hi"))["conversation_id"]
        other = web.device(web.OTHER)
        url = f"{CONVERSATIONS}/{conversation_id}"
        for response in (
            await web.http.get(f"{url}/messages", headers=other),
            await web.http.delete(url, headers=other),
        ):
            assert response.status_code == 404
            assert response.json() == {
                "error": {"code": "not_found", "message": "conversation not found"}
            }
        assert (await web.http.get(CONVERSATIONS, headers=other)).json()["conversations"] == []
        listed = await web.http.get(
            CONVERSATIONS, params={"before": conversation_id}, headers=other
        )
        assert listed.status_code == 422  # not a conversation the other device can see
        assert await store.get_conversation(conversation_id) is not None
        for path in (CONVERSATIONS, f"{url}/messages"):
            response = await web.http.get(path, headers={"X-Device-ID": ""})
            assert response.status_code == 400


async def test_tool_messages_are_never_shown(serve):
    async with serve() as web:
        conversation_id = (await _chat(web, "what time is it?"))["conversation_id"]
        stored = await store.list_messages(conversation_id)
        reply = stored[-1]
        # A reply's tool calls are stored as role "tool" messages; add some around a cursor.
        for i in range(3):
            await store.add_message(
                conversation_id,
                "tool",
                f"result {i}",
                name="clock",
                metadata={"reply_id": reply.id},
            )
        await _chat(web, "thanks")
        for i in range(2):
            await store.add_message(conversation_id, "tool", f"late {i}", name="clock")
        url = f"{CONVERSATIONS}/{conversation_id}/messages"
        shown = (await web.http.get(url)).json()
        roles = [m["role"] for m in shown["messages"]]
        assert roles == ["assistant", "user", "assistant", "user", "assistant"]
        assert shown["messages"][0]["content"] == "Hi there!" and shown["has_more"] is False
        # Paging one by one skips them too, without losing a message.
        seen, after = [], None
        while True:
            params = {"limit": 1, **({"after": after} if after else {})}
            page = (await web.http.get(url, params=params)).json()
            seen += [m["id"] for m in page["messages"]]
            if not page["has_more"]:
                break
            after = page["messages"][-1]["id"]
        assert seen == [m["id"] for m in shown["messages"]]
        # The socket's resume shows the same.
        async with web.ws() as socket:
            await web.recv(socket)  # conversation_started (resumed)
            await web.send(socket, "resume", conversation_id=conversation_id)
            history = await web.recv(socket)
        assert history["type"] == "history"
        assert [m["id"] for m in history["messages"]] == seen


async def test_the_caller_erases_only_its_own_memory(serve):
    async with serve() as web:
        mine = (await _chat(web, "hi"))["conversation_id"]
        theirs = (await _chat(web, "hi", headers=web.device(web.OTHER)))["conversation_id"]
        me = (await store.get_conversation(mine)).user_id
        other = (await store.get_conversation(theirs)).user_id
        await store.set_user_memory(me, "Likes tea.")
        await store.set_user_memory(other, "Likes coffee.")
        route = "/api/v1/users/me/memory"
        response = await web.http.delete(route, headers=web.device(web.OTHER))
        assert (response.status_code, response.json()) == (200, {"erased": True})
        assert (await store.get_user(me)).memory == "Likes tea."
        assert (await store.get_user(other)).memory is None
        response = await web.http.delete(route)
        assert response.status_code == 200
        assert (await store.get_user(me)).memory is None
        # Identified like every route; the memory plugin's admin route is still there.
        anonymous = await web.http.delete(route, headers={"X-Device-ID": ""})
        assert anonymous.status_code == 400
        admin = await web.http.delete(f"/api/v1/users/{me}/memory")
        assert admin.status_code == 403  # memory.erase_token is not set
