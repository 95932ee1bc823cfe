"""Telegram's text limits: messages of 4,096 and captions of 1,024 characters (UTF-16 units)."""

from __future__ import annotations

import re

__all__ = ["CAPTION_LIMIT", "MESSAGE_LIMIT", "fits", "split_text", "utf16_len"]

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024

# Where a long reply may be cut, best first: between paragraphs, between lines, after a
# sentence, between words. Each pattern matches the separator; the cut falls on its start.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"(?<=[.!?…])[\"'»”’)\]]*\s+"),
    re.compile(r"\s+"),
)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: characters outside the BMP (most emojis) count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def fits(text: str, limit: int) -> bool:
    """True when ``text`` is within ``limit`` UTF-16 units."""
    return utf16_len(text) <= limit


def _prefix_fitting(text: str, limit: int) -> int:
    """How many leading characters of ``text`` fit in ``limit`` UTF-16 units."""
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Split off the longest head within ``limit`` that ends at the best boundary available."""
    end = _prefix_fitting(text, limit)
    # Include the character just past the limit: a separator there is a perfect cut.
    window = text[: end + 1]
    for pattern in _BOUNDARIES:
        starts = [m.start() for m in pattern.finditer(window) if 0 < m.start() <= end]
        if starts:
            cut = starts[-1]
            return text[:cut].rstrip(), text[cut:].lstrip()
    return text[:end], text[end:]


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut ``text`` into pieces within ``limit``, at paragraph, line, sentence or word boundaries."""
    text = text.strip()
    pieces = []
    while not fits(text, limit):
        head, text = _cut(text, limit)
        if head:
            pieces.append(head)
    if text:
        pieces.append(text)
    return pieces
