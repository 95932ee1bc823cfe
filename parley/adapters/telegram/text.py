"""Telegram's text limits: messages of 4,096 and captions of 1,024 characters (UTF-16 units)."""

from __future__ import annotations

from parley.core import text as core_text
from parley.core.text import utf16_len

__all__ = ["CAPTION_LIMIT", "MESSAGE_LIMIT", "fits", "split_text", "utf16_len"]

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


def fits(text: str, limit: int) -> bool:
    """True when ``text`` is within ``limit`` UTF-16 units."""
    return utf16_len(text) <= limit


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into pieces within ``limit`` UTF-16 units, at paragraph, line, sentence or
    word boundaries (the one linear splitter, :func:`parley.core.text.split_text`)."""
    return core_text.split_text(text, limit, units=core_text.utf16_units)
