"""What the bot does with each kind of message: commands, text, voice notes, photos, the rest."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message
from pydantic import ValidationError

from parley.adapters.telegram.chats import RESUMING, ChatConversations, Participants
from parley.adapters.telegram.render import SPEECH_FORMAT, TurnRenderer
from parley.adapters.telegram.replies import APOLOGIES, TOPIC, ChatAction, Replier
from parley.adapters.telegram.settings import TelegramSettings
from parley.adapters.telegram.transport import MAX_DOWNLOAD, DownloadError, download, log
from parley.core import store
from parley.core.engine import Engine, Opened
from parley.core.inbound import Inbound
from parley.core.speech import SpeechOptions
from parley.core.text import clean

__all__ = ["HELP", "UNSUPPORTED", "Handlers", "invalid_update"]

HELP = """I'm a conversational agent: send me text or a voice note (photos with a caption work too).

/start - greet me and start a new conversation
/new - start a new conversation
/end - end the conversation
/template <id> - talk to another template (without an id: list them)
/lang <code> - switch language, e.g. /lang de
/help - this message"""

UNSUPPORTED = "Sorry, I can read text and listen to voice notes, but not this kind of message."

MAX_PHOTO = 5 * 1024 * 1024


def invalid_update(exc: ValidationError) -> str:
    """What an update aiogram refused lacks or got wrong, by field path only (never the values:
    they are the user's data)."""
    missing = sorted(
        {".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] == "missing"}
    )
    other = sorted(
        {".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] != "missing"}
    )
    parts = []
    if missing:
        parts.append(f"missing required fields: {', '.join(missing)}")
    if other:
        parts.append(f"invalid fields: {', '.join(other)}")
    return "; ".join(parts) or "invalid update"


class Handlers:
    """The bot's message handlers, registered on an aiogram Router by :meth:`router`."""

    def __init__(self, engine: Engine, settings: TelegramSettings, replier: Replier) -> None:
        self.engine = engine
        self.settings = settings
        self.replier = replier
        self.chats = ChatConversations(engine, settings)
        self.edit_interval = 1.0

    def router(self) -> Router:
        """A Router with every handler, most specific first."""
        router = Router(name="parley")
        router.message.outer_middleware(self._in_topic)
        router.message.register(self.start, CommandStart())
        router.message.register(self.new, Command("new"))
        router.message.register(self.end, Command("end"))
        router.message.register(self.template, Command("template"))
        router.message.register(self.lang, Command("lang"))
        router.message.register(self.help, Command("help"))
        router.message.register(self.unknown_command, F.text.startswith("/"))
        router.message.register(self.voice, F.voice)
        router.message.register(self.audio, F.audio)
        router.message.register(self.photo, F.photo)
        router.message.register(self.text, F.text)
        router.message.register(self.unsupported)
        return router

    @staticmethod
    async def _in_topic(
        handler: Callable[[Message, dict[str, Any]], Awaitable[Any]],
        message: Message,
        data: dict[str, Any],
    ) -> Any:
        """Answer in the forum topic the message was written in (``message_thread_id``)."""
        if message.is_topic_message and message.message_thread_id is not None:
            TOPIC.set(message.message_thread_id)
        return await handler(message, data)

    # -- commands --------------------------------------------------------------------------

    async def _say_opened(self, chat_id: int, opened: Opened, fallback: str) -> None:
        greeting = opened.greeting.content if opened.greeting is not None else fallback
        await self.replier.send_text(chat_id, greeting)

    async def start(self, message: Message) -> None:
        """/start: a new conversation and its greeting."""
        who = await self.chats.participants(message)
        opened = await self.chats.restart(who)
        await self._say_opened(who.chat_id, opened, "Hi! Send me a message or a voice note.")

    async def new(self, message: Message) -> None:
        """/new: end the conversation and start another."""
        who = await self.chats.participants(message)
        opened = await self.chats.restart(who)
        await self._say_opened(who.chat_id, opened, "New conversation started.")

    async def end(self, message: Message) -> None:
        """/end: end the conversation (``user_ended``) with the end prompt."""
        who = await self.chats.participants(message)
        conversation = await self.chats.current(who)
        if conversation is None:
            await self.replier.send_text(who.chat_id, "There is no conversation to end.")
            return
        await self.engine.end(conversation.id, "user_ended")
        farewell = self.engine.settings.language(conversation.language).prompts.end
        await self.replier.send_text(
            who.chat_id, farewell or "Conversation ended. Send a message to start a new one."
        )

    async def template(self, message: Message, command: CommandObject) -> None:
        """/template <id>: a new conversation with that template; no id: list the templates."""
        who = await self.chats.participants(message)
        templates = self.engine.settings.templates
        wanted = (command.args or "").strip()
        if not wanted or wanted not in templates:
            current = await self.chats.current(who)
            active = current.template_id if current else self.chats.default_template()
            lines = [f"Unknown template {wanted!r}." if wanted else "Templates:"]
            lines += [
                f"{'• ' if tid == active else '  '}{tid} - {t.name or tid}"
                for tid, t in sorted(templates.items())
            ]
            lines.append("Choose one with /template <id>.")
            await self.replier.send_text(who.chat_id, "\n".join(lines))
            return
        opened = await self.chats.restart(who, template_id=wanted)
        name = templates[wanted].name or wanted
        await self._say_opened(who.chat_id, opened, f"Now talking with {name}.")

    async def lang(self, message: Message, command: CommandObject) -> None:
        """/lang <code>: switch the conversation's language (and the chat's next ones)."""
        who = await self.chats.participants(message)
        known = sorted(self.engine.settings.languages)
        code = (command.args or "").strip().lower()
        if not code or (known and code not in known):
            lead = f"Unknown language {code!r}. " if code else ""
            choices = ", ".join(known) or "none configured"
            await self.replier.send_text(who.chat_id, f"{lead}Languages: {choices}.")
            return
        opened = await self.chats.ensure(who)
        await self.chats.set_language(opened.conversation, code)
        await self.replier.send_text(who.chat_id, f"Language set to {code}.")

    async def help(self, message: Message) -> None:
        """/help: what the bot does."""
        await self.replier.send_text(message.chat.id, HELP)

    async def unknown_command(self, message: Message, bot: Bot) -> None:
        """Another command: the help, unless it is addressed to another bot (``/x@other_bot``)."""
        _, _, mention = (message.text or "").split(maxsplit=1)[0].partition("@")
        if mention and mention.lower() != ((await bot.me()).username or "").lower():
            return
        await self.help(message)

    # -- turns -----------------------------------------------------------------------------

    async def text(self, message: Message) -> None:
        """A text message: the reply as text (or voice with ``reply_voice = always``); a text
        over ``telegram.max_text_chars`` is kept (cut, ``failed``) and gets a polite answer."""
        text = clean(message.text or "")
        if len(text) > self.settings.max_text_chars:
            detail = f"{len(text)} characters"
            await self._unreadable(message, "text", "message_too_long", detail, text=text)
            return
        await self._turn(message, Inbound(text=text), voice_in=False)

    async def audio(self, message: Message) -> None:
        """An audio file (``message.audio``, not a voice note): transcribed like a voice note."""
        await self.voice(message)

    async def voice(self, message: Message) -> None:
        """A voice note: STT, the turn, and the reply as a voice note (per ``reply_voice``)."""
        voice = message.voice or message.audio
        assert voice is not None
        if voice.file_size and voice.file_size > MAX_DOWNLOAD:
            await self._unreadable(message, "voice", "too_large", f"{voice.file_size} bytes")
            return
        try:
            async with ChatAction(self.replier.bot, message.chat.id, "record_voice"):
                audio = await download(self.replier.bot, voice.file_id)
        except Exception as exc:  # DownloadError, or the Bot API's/aiohttp's own errors
            log.warning("voice note in chat %s not downloaded: %s", message.chat.id, exc)
            await self._unreadable(message, "voice", "download_failed", str(exc))
            return
        inbound = Inbound(
            text=clean(message.caption or ""),
            audio=audio,
            audio_mime=voice.mime_type or "audio/ogg",
            metadata={
                "telegram_voice_duration": voice.duration,
                "telegram_kind": "voice" if message.voice else "audio",
            },
        )
        await self._turn(message, inbound, voice_in=message.voice is not None)

    async def photo(self, message: Message) -> None:
        """A photo (with its caption): image parts for the LLM, as a data: URL.

        A data URL rather than the Bot API file URL, which contains the bot token and would hand
        it to the LLM provider.
        """
        sizes = [p for p in message.photo or [] if not p.file_size or p.file_size <= MAX_PHOTO]
        if not sizes:
            await self._unreadable(message, "photo", "too_large", "every size is over the cap")
            return
        try:
            data = await download(self.replier.bot, sizes[-1].file_id, limit=MAX_PHOTO)
        except DownloadError as exc:
            log.warning("photo in chat %s not downloaded: %s", message.chat.id, exc)
            await self._unreadable(message, "photo", "too_large", str(exc))
            return
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        inbound = Inbound(text=clean(message.caption or ""), image_urls=[url])
        await self._turn(message, inbound, voice_in=False)

    async def unsupported(self, message: Message) -> None:
        """Stickers, documents, locations...: say what the bot understands."""
        await self.replier.send_text(message.chat.id, UNSUPPORTED)

    async def _unreadable(
        self, message: Message, kind: str, code: str, detail: str, *, text: str | None = None
    ) -> None:
        """A voice note or photo Parley could not fetch, or a text too long: keep the user's
        message on record as ``failed`` (nothing a user sends is lost; a text is cut at the cap),
        then apologise."""
        try:
            who = await self.chats.participants(message)
            conversation = (await self.chats.ensure(who)).conversation
            await store.add_message(
                conversation.id,
                "user",
                (text or "")[: self.settings.max_text_chars] or clean(message.caption or ""),
                status="failed",
                lang=conversation.language,
                metadata={
                    **self._sender_metadata(who),
                    "telegram_kind": kind,
                    "error": {"code": code, "message": self._without_token(detail)},
                },
                channel=conversation.channel,
                platform_message_id=f"{who.chat_id}:{message.message_id}",
            )
        except store.DuplicateMessage:
            pass
        except Exception:
            log.exception("could not record an unreadable %s in chat %s", kind, message.chat.id)
        await self.replier.apologise(message.chat.id, code if code in APOLOGIES else "default")

    def _without_token(self, text: str) -> str:
        token = self.replier.bot.token
        return text.replace(token, "<token>") if token else text

    async def _turn(self, message: Message, inbound: Inbound, *, voice_in: bool) -> None:
        who = await self.chats.participants(message)
        inbound.platform_message_id = f"{who.chat_id}:{message.message_id}"
        inbound.user_message_id = RESUMING.get()  # stored by a try a crash cut: answer it again
        inbound.metadata.update(self._sender_metadata(who))
        voice_out = self.settings.wants_voice(voice_in) and self.engine.tts is not None
        speech = SpeechOptions(output_format=SPEECH_FORMAT) if voice_out else None
        action = "record_voice" if voice_out else "typing"
        async with ChatAction(self.replier.bot, who.chat_id, action):
            opened = await self.chats.ensure(who)
            if opened.greeting is not None:
                await self.replier.send_text(who.chat_id, opened.greeting.content)
            conversation = opened.conversation
            template = self.engine.template(conversation.template_id)
            renderer = TurnRenderer(
                self.replier,
                who.chat_id,
                voice=voice_out,
                stream_edits=self.settings.stream_edits,
                named=len(template.personas) > 1,
                edit_interval=self.edit_interval,
            )
            turn = self.engine.turn(conversation.id, inbound, speech=speech)
            async with aclosing(turn) as events:
                errors = await renderer.render(events)
        failures = [e for e in errors if e.code != "tts_failed"]
        if failures:
            await self.replier.apologise(who.chat_id, failures[0].code)

    @staticmethod
    def _sender_metadata(who: Participants) -> dict[str, object]:
        meta: dict[str, object] = {"telegram_chat_id": who.chat_id}
        if who.sender is not None and who.sender.id != who.owner.id:
            meta["sender_user_id"] = who.sender.id
            meta["sender_name"] = who.sender.display_name
        return meta
