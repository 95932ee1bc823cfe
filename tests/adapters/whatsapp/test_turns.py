"""Turns over WhatsApp: text and voice round trips, long replies, several messages, failures."""

from __future__ import annotations

import io
import math
import struct

import av
import pytest

from parley.audio import DecodedAudio, encode_ogg_opus
from parley.core import store
from parley.core.providers import ProviderError

NO_GREETING = {"languages": {"en": {"prompts": {"start": ""}}}}


def _voice_note() -> bytes:
    """Half a second of a real OGG/Opus voice note, as a phone would send it."""
    rate = 16000
    samples = [int(6000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(rate // 2)]
    return encode_ogg_opus(DecodedAudio(struct.pack(f"<{len(samples)}h", *samples), rate))


async def _conversation_messages(wa_id: str):
    user = await store.get_or_create_user("whatsapp", wa_id)
    conversation = await store.find_open_conversation(user.id, "whatsapp")
    return user, conversation, await store.list_messages(conversation.id)


async def test_text_round_trip(serve, meta, graph, providers):
    providers.llm.push("Hello Ann, how can I help?")
    providers.llm.push("Sure thing.")
    async with serve() as served:
        await served.deliver(meta.text_delivery("wamid.T1", "hi there", name="Ann"))
        await served.idle()
        await served.deliver(meta.text_delivery("wamid.T2", "tell me more", name="Ann B."))
        await served.idle()
        user, conversation, messages = await _conversation_messages(meta.ANN)
        assert user.display_name == "Ann B."
        assert conversation.channel == "whatsapp" and conversation.turn_count == 2
        assert [(m.role, m.content, m.status) for m in messages] == [
            ("assistant", "Hi there!", "complete"),
            ("user", "hi there", "complete"),
            ("assistant", "Hello Ann, how can I help?", "complete"),
            ("user", "tell me more", "complete"),
            ("assistant", "Sure thing.", "complete"),
        ]
        assert messages[1].platform_message_id == "wamid.T1"
        assert messages[1].metadata["wa_id"] == meta.ANN
        assert messages[2].metadata["whatsapp_ids"] == ["wamid.out.2"]
        assert await store.pending_messages("whatsapp") == []
    # One conversation for the sender, the history reached the LLM.
    assert providers.llm.requests[1].messages[-1]["content"] == "tell me more"
    reads = graph.of("read")
    assert [c.json for c in reads] == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
            "typing_indicator": {"type": "text"},
        }
        for wamid in ("wamid.T1", "wamid.T2")
    ]
    first_text = graph.of("text")[0]
    assert first_text.path == f"/v21.0/{meta.PHONE_ID}/messages"
    assert first_text.headers["Authorization"] == f"Bearer {meta.TOKEN}"
    assert first_text.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": meta.ANN,
        "type": "text",
        "text": {"preview_url": False, "body": "Hi there!"},
    }
    assert graph.texts(meta.ANN) == [
        "Hi there!",
        "Hello Ann, how can I help?",
        "Sure thing.",
    ]
    kinds = [c.kind for c in graph.calls]
    assert kinds == ["read", "text", "text", "read", "text"]


async def test_voice_round_trip(serve, meta, graph, providers):
    graph.media["media-in-1"] = (_voice_note(), "audio/ogg; codecs=opus")
    providers.llm.push("It is noon. Enjoy your lunch.")
    payload = meta.envelope(
        meta.value(
            [meta.audio_message("wamid.V1", "media-in-1", voice=True)],
            [meta.contact(meta.ANN, "Ann")],
        )
    )
    async with serve(NO_GREETING) as served:
        assert (await served.deliver(payload)).status_code == 200
        await served.idle()
        _, _, messages = await _conversation_messages(meta.ANN)
        user_message, reply = messages
        assert (user_message.content, user_message.status) == ("what time is it", "complete")
        assert user_message.metadata["voice"] is True
        assert "stt_ms" in user_message.metadata
        assert reply.content == "It is noon. Enjoy your lunch."
        voice = reply.metadata["whatsapp_voice"]
    # The audio was fetched with the bearer token and handed to STT as downloaded.
    assert [c.kind for c in graph.calls[:3]] == ["read", "info", "download"]
    assert graph.of("download")[0].headers["Authorization"] == f"Bearer {meta.TOKEN}"
    assert providers.stt.calls == [(graph.media["media-in-1"][0], "audio/ogg; codecs=opus")]
    # Text first, then the voice note.
    assert graph.texts() == ["It is noon. Enjoy your lunch."]
    upload = graph.of("upload")[0]
    assert upload.path == f"/v21.0/{meta.PHONE_ID}/media"
    assert upload.form == {"messaging_product": "whatsapp", "type": "audio/ogg"}
    assert upload.file_type == "audio/ogg"
    with av.open(io.BytesIO(upload.file)) as container:
        assert container.format.name == "ogg"
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        frames = list(container.decode(audio=0))
    seconds = sum(f.samples for f in frames) / 48000
    # ToneTTS speaks 50 ms per word: 6 words.
    assert 0.25 <= seconds <= 0.45
    audio = graph.of("audio")[0]
    media_id = next(k for k, v in graph.media.items() if v[0] == upload.file)
    assert audio.json["audio"] == {"id": media_id, "voice": True}
    assert audio.json["to"] == meta.ANN
    assert voice["media_id"] == media_id and voice["id"].startswith("wamid.out.")
    assert [c.kind for c in graph.calls[3:]] == ["text", "upload", "audio"]
    assert {r[2] for r in providers.tts.requests} == {"pcm_24000"}


@pytest.mark.parametrize(
    ("mode", "voice_note", "spoken"),
    [("auto", False, False), ("never", True, False), ("always", None, True)],
)
async def test_reply_voice_modes(serve, meta, graph, providers, mode, voice_note, spoken):
    graph.media["media-in-2"] = (_voice_note(), "audio/ogg")
    if voice_note is None:
        message = meta.text_message("wamid.M1", "hello")
    else:
        message = meta.audio_message("wamid.M1", "media-in-2", voice=voice_note)
    payload = meta.envelope(meta.value([message], [meta.contact(meta.ANN, "Ann")]))
    async with serve(NO_GREETING, reply_voice=mode) as served:
        await served.deliver(payload)
        await served.idle()
    assert graph.texts() == ["ok"]
    assert len(graph.of("audio")) == (1 if spoken else 0)
    assert bool(providers.tts.requests) == spoken


async def test_long_reply_is_split(serve, meta, graph, providers):
    words = [f"word{i:04d}" for i in range(1200)]  # 10,799 characters
    providers.llm.push(" ".join(words))
    async with serve(NO_GREETING) as served:
        await served.deliver(meta.text_delivery("wamid.L1", "talk a lot"))
        await served.idle()
        _, _, messages = await _conversation_messages(meta.ANN)
        assert len(messages[-1].metadata["whatsapp_ids"]) == 3
    parts = graph.texts()
    assert len(parts) == 3
    assert all(len(part) <= 4096 for part in parts)
    assert " ".join(parts).split() == words


async def test_several_messages_in_one_delivery(serve, meta, graph, providers):
    payload = meta.envelope(
        meta.value(
            [
                meta.text_message("wamid.A1", "one", meta.ANN),
                meta.text_message("wamid.B1", "uno", meta.BOB),
                meta.text_message("wamid.A2", "two", meta.ANN),
            ],
            [meta.contact(meta.ANN, "Ann"), meta.contact(meta.BOB, "Bob")],
        )
    )
    async with serve({"llm": {"provider": "echo"}}) as served:
        response = await served.deliver(payload)
        assert response.json() == {"received": 3, "stored": 3}
        await served.idle()
        bob, _, _ = await _conversation_messages(meta.BOB)
        assert bob.display_name == "Bob"
        _, _, ann_messages = await _conversation_messages(meta.ANN)
        assert [m.content for m in ann_messages if m.role == "user"] == ["one", "two"]
    assert graph.texts(meta.ANN) == ["Hi there!", "You said: one.", "You said: two."]
    assert graph.texts(meta.BOB) == ["Hi there!", "You said: uno."]


async def test_message_after_the_end_opens_a_new_conversation(serve, meta, graph, providers):
    providers.llm.push("Welcome back.")
    payload = meta.envelope(
        meta.value(
            [meta.text_message("wamid.E1", "bye"), meta.text_message("wamid.E2", "wait, one more")],
            [meta.contact(meta.ANN, "Ann")],
        )
    )
    release = graph.stall("read")  # both messages are stored before the first turn runs
    async with serve() as served:
        await served.deliver(payload)
        release.set()
        await served.idle()
        user, _, messages = await _conversation_messages(meta.ANN)
        assert [(m.role, m.content) for m in messages] == [
            ("assistant", "Hi there!"),
            ("user", "wait, one more"),
            ("assistant", "Welcome back."),
        ]
        assert messages[1].platform_message_id == "wamid.E2"
        conversations = await store.list_conversations(user.id)
        assert [c.status for c, _ in conversations] == ["open", "ended"]
        ended = await store.list_messages(conversations[1][0].id)
        assert [(m.role, m.content, m.status) for m in ended] == [
            ("assistant", "Hi there!", "complete"),
            ("user", "wait, one more", "failed"),  # stored ahead of the turn of "bye"
            ("user", "bye", "complete"),
            ("assistant", "Take care!", "complete"),
        ]
        assert ended[1].metadata["moved_to"] == messages[1].id
        assert ended[1].platform_message_id is None
        assert await store.pending_messages("whatsapp") == []
    assert graph.texts() == ["Hi there!", "Take care!", "Hi there!", "Welcome back."]


async def test_failed_transcription_marks_the_message_failed(serve, meta, graph, providers):
    providers.stt.error = ProviderError("no speech", provider="fake")
    graph.media["media-in-3"] = (_voice_note(), "audio/ogg")
    payload = meta.envelope(meta.value([meta.audio_message("wamid.S1", "media-in-3")]))
    async with serve(NO_GREETING) as served:
        await served.deliver(payload)
        await served.idle()
        _, _, messages = await _conversation_messages(meta.ANN)
        assert [(m.role, m.status) for m in messages] == [("user", "failed")]
        assert messages[0].metadata["error"] == {"code": "stt_failed", "message": "no speech"}
        assert await store.pending_messages("whatsapp") == []
    assert graph.of("text") == []
    assert providers.llm.requests == []
