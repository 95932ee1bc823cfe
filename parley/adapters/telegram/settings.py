"""``[telegram]`` settings: validated at start-up, without importing aiogram."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from msgspec import Meta

from parley.core.config import InvalidSetting, Settings, SettingsError, parse_section

__all__ = ["MODES", "REPLY_VOICE", "TelegramSettings", "load_telegram_settings"]

Mode = Literal["polling", "webhook"]
ReplyVoice = Literal["auto", "always", "never"]
MODES: tuple[str, ...] = get_args(Mode)
REPLY_VOICE: tuple[str, ...] = get_args(ReplyVoice)
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"

_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")


@dataclass(slots=True)
class TelegramSettings:
    """The Telegram bot: how it reaches the Bot API and how it answers."""

    enabled: bool = False
    """Run the bot with ``parley serve``."""
    token: str = ""
    """The bot token from @BotFather; empty: the ``TELEGRAM_BOT_TOKEN`` environment variable."""
    api_base: Annotated[str, Meta(pattern=r"^\s*https?://")] = "https://api.telegram.org"
    """Bot API server: requests go to ``{api_base}/bot{token}/{method}``, files come from
    ``{api_base}/file/bot{token}/{path}`` (a self-hosted ``telegram-bot-api`` or a test server)."""
    mode: Mode = "polling"
    """``polling`` (getUpdates in the background) or ``webhook`` (``POST /webhooks/telegram``)."""
    webhook_url: str = ""
    """Public URL Telegram posts updates to, ending in ``/webhooks/telegram`` (webhook mode)."""
    webhook_secret: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{0,256}$")] = ""
    """Secret Telegram sends back in ``X-Telegram-Bot-Api-Secret-Token``: 1-256 characters of
    ``A-Z a-z 0-9 _ -`` (webhook mode)."""
    template: str = ""
    """Template of new Telegram conversations; empty: ``conversation.default_template``."""
    reply_voice: ReplyVoice = "auto"
    """``auto``: a voice note is answered with a voice note, text with text; ``always``: every
    reply is a voice note; ``never``: every reply is text."""
    stream_edits: bool = False
    """Text replies appear at once and grow by editing the message (at most about once a second)."""
    greeting: bool = True
    """Open new conversations with the template's greeting (false: no greeting here)."""
    max_body_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 1_048_576
    """Largest webhook update accepted, in bytes (413 beyond; Telegram's own updates are small)."""
    max_text_chars: Annotated[int, Meta(ge=1, le=1_000_000)] = 4096
    """Longest text answered; a longer one is kept (cut, ``failed``) and gets a polite answer.
    Telegram's clients send at most 4,096 characters; a webhook body may carry more."""

    def __post_init__(self) -> None:
        self.api_base = self.api_base.strip().rstrip("/")
        if not self.enabled:
            return
        token = self.resolved_token()
        if not token:
            raise InvalidSetting("token", f"must be set (or the {TOKEN_ENV} environment variable)")
        if not _TOKEN.fullmatch(token):  # never echo the token itself
            raise InvalidSetting(
                "token", "must look like 123456789:AAE... (the token from @BotFather)"
            )
        if self.mode == "webhook":
            if not self.webhook_url.startswith(("http://", "https://")):
                raise InvalidSetting("webhook_url", "must be an http(s) URL when mode is webhook")
            if not self.webhook_secret:
                raise InvalidSetting("webhook_secret", "must be set when mode is webhook")

    def resolved_token(self) -> str:
        """``token``, or the ``TELEGRAM_BOT_TOKEN`` environment variable."""
        return self.token or os.environ.get(TOKEN_ENV, "")

    def wants_voice(self, voice_in: bool) -> bool:
        """Whether a reply to a voice note (``voice_in``) or to text should be a voice note."""
        if self.reply_voice == "always":
            return True
        return voice_in and self.reply_voice == "auto"


def load_telegram_settings(settings: Settings, **overrides: Any) -> TelegramSettings:
    """Validate ``[telegram]`` (plus ``overrides``); a bad value raises SettingsError naming it."""
    data = {**(settings.raw.get("telegram") or {}), **overrides}
    telegram = parse_section("telegram", data, TelegramSettings)
    if telegram.template and telegram.template not in settings.templates:
        known = ", ".join(sorted(settings.templates)) or "none"
        raise SettingsError(
            f"telegram.template: unknown template {telegram.template!r} (known: {known})"
        )
    return telegram
