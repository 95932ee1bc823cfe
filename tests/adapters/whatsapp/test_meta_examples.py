"""WhatsApp against Meta's published webhook examples (tests/fixtures/whatsapp/meta_examples.json):
every kind of message is stored and answered (a vision model for images, a polite word for what
Parley cannot read), groups, status callbacks, number changes, surrogates, odd field types and
over-long texts."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from parley.adapters.whatsapp.intake import APOLOGIES
from parley.core import store
from parley.core.text import REPLACEMENT

EXAMPLES = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "whatsapp" / "meta_examples.json").read_text()
)
META_PHONE = "106540352242922"
PHONE = "1098765432"  # the fake Graph API's (conftest)
USER = "16505551234"
NO_GREETING = {"languages": {"en": {"prompts": {"start": ""}}}}
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg bytes" * 10


def example(name: str) -> Any:
    """A fresh copy of one of Meta's examples, addressed to the fake Graph API's phone number."""
    return json.loads(json.dumps(EXAMPLES[name]).replace(META_PHONE, PHONE))


def first_message(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]


async def user_messages(wa_id: str = USER) -> list[Any]:
    user = await store.get_or_create_user("whatsapp", wa_id)
    conversation = await store.find_open_conversation(user.id, "whatsapp")
    assert conversation is not None
    return [m for m in await store.list_messages(conversation.id) if m.role == "user"]


async def test_a_lone_surrogate_is_replaced_and_the_message_answered(
    serve, graph, providers, database_settings
):
    payload = example("text")
    first_message(payload)["text"]["body"] = "I love it \ud83d\x00"
    contact = payload["entry"][0]["changes"][0]["value"]["contacts"][0]
    contact["profile"]["name"] = "Sheena \udc00"
    body = json.dumps(payload).encode()  # escapes the surrogates: valid JSON, as Meta sends
    assert b"\\ud83d" in body
    assert b"\\u0000" in body  # and a NUL, which PostgreSQL cannot store
    async with serve({**NO_GREETING, **database_settings}) as served:
        response = await served.deliver(body)
        assert response.status_code == 200, response.text
        await served.idle()
        (message,) = await user_messages()
        assert message.content == f"I love it {REPLACEMENT}{REPLACEMENT}"
        assert message.status == "complete"
        assert (await store.get_or_create_user("whatsapp", USER)).display_name == (
            f"Sheena {REPLACEMENT}"
        )
    assert graph.texts(USER) == ["ok"]


async def test_fields_of_unexpected_types_are_skipped_and_the_rest_read(
    serve, graph, providers, logs
):
    good = example("text")
    broken = [
        {"object": "whatsapp_business_account", "entry": "not a list"},
        {"object": "whatsapp_business_account", "entry": ["not an object"]},
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": "x"}]}],
        },
    ]
    value = good["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["profile"] = "Sheena"  # a string instead of an object
    bad_text = copy.deepcopy(value["messages"][0])
    bad_text.update(id="wamid.BADTEXT", text="a string")  # text as a string
    value["messages"].insert(0, bad_text)
    value["messages"].insert(0, "not a message")
    async with serve(NO_GREETING) as served:
        for payload in broken:
            response = await served.deliver(payload)
            assert response.status_code == 200, response.text
            assert response.json() == {"received": 0, "stored": 0}
        response = await served.deliver(good)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == 1
        await served.idle()
        (message,) = await user_messages()
        assert message.content == "Does it come in another color?"
    assert graph.texts(USER) == ["ok"]
    skipped = [r.getMessage() for r in logs.records if "skipped" in r.getMessage()]
    assert any("entry is str" in line for line in skipped), skipped
    assert any("profile is str" in line for line in skipped), skipped
    assert any("text is str" in line for line in skipped), skipped
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]


async def test_an_image_and_its_caption_go_to_the_vision_model(serve, graph, providers):
    graph.media["1003383421387256"] = (JPEG, "image/jpeg")
    providers.llm.push("It looks like a medium.")
    async with serve(NO_GREETING) as served:
        await served.deliver(example("image"))
        await served.idle()
        (message,) = await user_messages()
        assert (message.content, message.status) == ("Is this the right size?", "complete")
        assert message.metadata["type"] == "image"
    request = providers.llm.requests[-1]
    asked = json.dumps(request.messages[-1])
    assert "Is this the right size?" in asked
    assert "data:image/jpeg;base64," in asked
    assert "download" not in asked  # the Graph URL (and its token) never reach the LLM
    assert graph.texts(USER) == ["It looks like a medium."]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("sticker", ""),
        ("location", "Main Street Beach, 1 Hacker Way, Menlo Park, CA 94025"),
        ("contacts", "Barbara J. Johnson"),
        ("order", "Please ship to my office address."),
        ("unsupported", ""),
    ],
)
async def test_what_parley_cannot_read_is_stored_and_answered_politely(
    serve, graph, providers, name, content
):
    async with serve(NO_GREETING) as served:
        response = await served.deliver(example(name))
        assert response.json() == {"received": 1, "stored": 1}
        await served.idle()
        (message,) = await user_messages()
        assert message.content.startswith(content)
        assert message.metadata["type"] == name
        assert message.status == "failed"
        assert message.metadata["error"]["code"] == "unsupported_type"
    assert providers.llm.requests == []
    assert graph.texts(USER) == [APOLOGIES["unsupported_type"]]


async def test_group_messages_are_ignored_unless_group_replies(serve, graph, providers, logs):
    group = first_message(example("group_text"))["group_id"]
    async with serve(NO_GREETING) as served:
        response = await served.deliver(example("group_text"))
        assert response.json() == {"received": 1, "stored": 0}
        await served.idle()
    assert graph.of("text") == []
    assert any("group message" in r.getMessage() for r in logs.records)
    async with serve(NO_GREETING, group_replies=True) as served:
        await served.deliver(example("group_text"))
        await served.idle()
    (sent,) = graph.of("text")
    assert sent.json is not None
    assert (sent.json["recipient_type"], sent.json["to"]) == ("group", group)


async def test_status_callbacks_are_recorded_on_the_reply(serve, graph, providers):
    def status(name: str, wamid: str) -> dict[str, Any]:
        payload = example("status")[name]
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = wamid
        return payload

    providers.llm.push("First answer")
    providers.llm.push("Second answer")
    async with serve(NO_GREETING) as served:
        await served.deliver(example("text"))
        await served.idle()
        second = example("text")
        first_message(second)["id"] = "wamid.second"
        await served.deliver(second)
        await served.idle()
        one, two = [c.json["text"]["body"] for c in graph.of("text") if c.json]
        assert (one, two) == ("First answer", "Second answer")
        wamids = [f"wamid.out.{i}" for i in (1, 2)]  # the fake Graph API numbers its sends
        for name in ("sent", "read", "delivered"):  # out of order: read, then delivered
            await served.deliver(status(name, wamids[0]))
        await served.deliver(status("failed", wamids[1]))
        user = await store.get_or_create_user("whatsapp", USER)
        conversation = await store.find_open_conversation(user.id, "whatsapp")
        replies = [m for m in await store.list_messages(conversation.id) if m.role == "assistant"]
        assert [m.content for m in replies] == ["First answer", "Second answer"]
        assert replies[0].status == "complete"
        assert replies[0].metadata["whatsapp_delivery"]["status"] == "read"
        assert replies[1].status == "failed"  # a failed reply does not stay complete
        delivery = replies[1].metadata["whatsapp_delivery"]
        assert delivery["status"] == "failed"
        assert delivery["errors"][0]["code"] == 131049
        unknown = await served.deliver(status("read", "wamid.nobody"))
        assert unknown.status_code == 200


async def test_user_changed_number_moves_the_identity(serve, graph, providers):
    new = "12195555358"
    async with serve(NO_GREETING) as served:
        await served.deliver(example("text"))
        await served.idle()
        user = await store.get_or_create_user("whatsapp", USER)
        await served.deliver(example("system_user_changed_number"))
        await served.idle()
        assert (await store.get_or_create_user("whatsapp", new)).id == user.id
        later = example("text")
        first_message(later).update(id="wamid.fromnew", **{"from": new})
        later["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = new
        await served.deliver(later)
        await served.idle()
        texts = [m.content for m in await user_messages(new)]
        assert texts == ["Does it come in another color?"] * 2  # one history, both numbers
    assert graph.texts(new) == ["ok"]


async def test_an_over_long_text_is_cut_stored_and_answered_politely(serve, graph, providers):
    payload = example("text")
    first_message(payload)["text"]["body"] = "x" * 5000
    async with serve(NO_GREETING, max_text_chars=100) as served:
        await served.deliver(payload)
        await served.idle()
        (message,) = await user_messages()
        assert message.content == "x" * 100
        assert message.metadata["original_chars"] == 5000
        assert (message.status, message.metadata["error"]["code"]) == (
            "failed",
            "message_too_long",
        )
    assert providers.llm.requests == []
    assert graph.texts(USER) == [APOLOGIES["message_too_long"]]


async def test_greetings_can_be_turned_off_for_whatsapp(serve, graph, providers):
    providers.llm.push("We open at nine.")
    async with serve(greeting=False) as served:  # the language pack has a greeting
        await served.deliver(example("text"))
        await served.idle()
    assert graph.texts(USER) == ["We open at nine."]  # the answer, no greeting first


async def test_deep_json_is_400_invalid_json(serve, meta, graph, logs):
    deep = b"[" * 1000 + b"]" * 1000
    async with serve() as served:
        response = await served.deliver(deep, signature=meta.sign(deep))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
        assert (await served.deliver(example("text"))).status_code == 200
        await served.idle()
    assert not [r for r in logs.records if r.levelno > logging.INFO]
