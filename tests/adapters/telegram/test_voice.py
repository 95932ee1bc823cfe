"""Voice notes: download, STT as it is, spoken reply uploaded as OGG/Opus with its duration."""

from __future__ import annotations

import io
import logging

import av

from parley.audio import to_ogg_opus
from parley.core import store

from .conftest import CHAT, TOKEN


def _voice_note() -> bytes:
    ogg, _ = to_ogg_opus(b"\x00\x10" * 16000, source_format="pcm_16000")
    return ogg


def _probe(data: bytes) -> tuple[str, str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return container.format.name, stream.codec_context.name, samples / stream.rate


async def test_voice_note_round_trip(tg, api):
    note = _voice_note()
    api.add_file("voice-1", note)
    reply = "I heard you. Here is my spoken answer for you."
    tg.llm.push(reply)
    async with tg.running():
        tg.push(tg.voice("voice-1"))
        [voice] = await api.wait_sent("sendVoice")
        user = await store.get_or_create_user("telegram", str(CHAT))
        conversation = await store.find_open_conversation(user.id, "telegram")
        stored = await store.list_messages(conversation.id)
    assert tg.stt.calls == [(note, "audio/ogg")]  # OGG/Opus goes to STT as it is
    assert tg.llm.requests[0].messages[-1]["content"] == "hello from a voice note"
    assert all(fmt == "pcm_24000" for _, _, fmt in tg.tts.requests)
    fmt, codec, seconds = _probe(voice.upload("voice"))
    assert (fmt, codec) == ("ogg", "opus")
    assert abs(seconds - 0.05 * len(reply.split())) < 0.1  # ToneTTS: 50 ms per word
    assert voice.params["duration"] == "1"
    assert voice.params["caption"] == reply
    assert any(c.params["action"] == "record_voice" for c in api.sent("sendChatAction"))
    # The greeting of the new conversation is text; the reply is the voice note only.
    assert [c.params["text"] for c in api.sent("sendMessage")] == ["Hi there!"]
    user_message = next(m for m in stored if m.role == "user")
    assert user_message.content == "hello from a voice note"


async def test_long_spoken_reply_sends_the_text_separately(tg, api):
    api.add_file("voice-2", _voice_note())
    reply = "This sentence is spoken aloud. " * 40
    tg.llm.push(reply.strip())
    async with tg.running():
        tg.push(tg.voice("voice-2"))
        [voice] = await api.wait_sent("sendVoice")
        texts = [c.params["text"] for c in await api.wait_sent("sendMessage", 2)]
    assert "caption" not in voice.params
    assert texts[-1] == reply.strip()


async def test_reply_voice_always_answers_text_with_voice(tg, api):
    tg.llm.push("Spoken even though you typed.")
    async with tg.running(reply_voice="always"):
        tg.push(tg.text("hi"))
        [voice] = await api.wait_sent("sendVoice")
    assert voice.params["caption"] == "Spoken even though you typed."
    assert tg.stt.calls == []


async def test_reply_voice_never_answers_voice_with_text(tg, api):
    api.add_file("voice-3", _voice_note())
    tg.llm.push("Just text.")
    async with tg.running(reply_voice="never"):
        tg.push(tg.voice("voice-3"))
        texts = [c.params["text"] for c in await api.wait_sent("sendMessage", 2)]
    assert texts[-1] == "Just text."
    assert api.sent("sendVoice") == [] and tg.tts.requests == []


async def test_failed_download_is_logged_without_the_token(tg, api, caplog):
    caplog.set_level(logging.INFO)
    api.add_file("gone", None)  # getFile works, the download answers 404
    async with tg.running():
        tg.push(tg.voice("gone"))
        [sorry] = await api.wait_sent("sendMessage")
        user = await store.get_or_create_user("telegram", str(CHAT))
        conversation = await store.find_open_conversation(user.id, "telegram")
        stored = await store.list_messages(conversation.id)
    assert sorry.params["text"].startswith("Sorry, something went wrong")
    assert "404" in caplog.text and "<token>" in caplog.text
    assert TOKEN not in caplog.text
    assert tg.stt.calls == []
    # What the user sent stays on record, marked failed.
    users = [m for m in stored if m.role == "user"]
    assert [(m.status, m.metadata["telegram_kind"]) for m in users] == [("failed", "voice")]
    assert users[0].metadata["error"]["code"] == "download_failed"
    assert TOKEN not in users[0].metadata["error"]["message"]


async def test_local_bot_api_server_paths_are_read_from_disk(tg, api, tmp_path):
    note = _voice_note()
    local = tmp_path / "voice" / "file_7.oga"
    local.parent.mkdir()
    local.write_bytes(note)
    api.add_file("local-voice", None, path=str(local))  # `--local` mode: an absolute path
    tg.llm.push("Read from disk.")
    async with tg.running(reply_voice="never"):
        tg.push(tg.voice("local-voice"))
        await api.wait_sent("sendMessage", 2)
    assert tg.stt.calls == [(note, "audio/ogg")]
