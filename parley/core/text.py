"""Text as platforms carry it: cleaning what arrives, splitting what goes out.

:func:`clean` replaces lone UTF-16 surrogates (``"\\ud83d"`` from a truncated emoji is valid JSON
that Python decodes but cannot encode to UTF-8) and NUL characters (``"\\u0000"``, valid JSON that
PostgreSQL cannot store in text) with U+FFFD, so a message can always be stored.
:func:`split_text` cuts a long reply into parts within a platform's limit, at the best boundary,
in time linear in the text's length (every adapter uses this one splitter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "REPLACEMENT",
    "TOO_DEEP",
    "clean",
    "clean_json",
    "loads_clean",
    "split_text",
    "utf16_len",
    "utf16_units",
]

REPLACEMENT = "\ufffd"

TOO_DEEP = "the body is not valid JSON: nested too deeply"
"""The message of a 400 ``invalid_json`` for JSON nested deeper than the decoders go."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Where a long text may be cut, best first: between paragraphs, between lines, after a sentence,
# between words. Each pattern matches the separator; the cut falls on its start.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"(?<=[.!?…])[\"'»”’)\]]*\s+"),
    re.compile(r"\s+"),
)


def clean(text: str) -> str:
    """``text`` with every lone surrogate and NUL replaced by U+FFFD (well-formed text is
    unchanged)."""
    if not _UNSTORABLE.search(text):
        return text
    text = text.replace("\x00", REPLACEMENT)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_json(value: Any) -> Any:
    """A decoded JSON value with every string (keys included) passed through :func:`clean`."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean_json(v) for k, v in value.items()}
    return value


_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def loads_clean(raw: bytes | str) -> Any | None:
    """JSON text that may escape lone surrogates (``"\\ud83d"``: valid JSON, refused by strict
    decoders) or NUL (``"\\u0000"``: unstorable), decoded and cleaned; None when it escapes
    neither or is not JSON."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not _UNSTORABLE_ESCAPE.search(data):
        return None
    try:
        return clean_json(json.loads(data))
    except (ValueError, RecursionError):
        return None


def utf16_units(ch: str) -> int:
    """How many UTF-16 code units a character takes (2 outside the BMP, most emojis)."""
    return 2 if ord(ch) > 0xFFFF else 1


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram counts its limits)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _one(ch: str) -> int:
    return 1


def split_text(text: str, limit: int, *, units: Callable[[str], int] = _one) -> list[str]:
    """Cut ``text`` into stripped parts of at most ``limit`` units (``units(ch)`` per character,
    one by default), at a paragraph, line, sentence or word boundary when the part has one.

    Linear: each part is measured and searched once, and the rest is never copied.
    """
    parts: list[str] = []
    size = len(text)
    start = _skip_space(text, 0)
    while start < size:
        if units is _one:
            end = min(size, start + limit)
        else:
            end, used = start, 0
            while end < size:
                used += units(text[end])
                if used > limit:
                    break
                end += 1
        if end >= size:
            parts.append(text[start:].rstrip())
            break
        window = text[start : end + 1]  # the character past the limit: a separator there is ideal
        cut = end - start
        for pattern in _BOUNDARIES:
            starts = [m.start() for m in pattern.finditer(window) if 0 < m.start() <= end - start]
            if starts:
                cut = starts[-1]
                break
        cut = max(cut, 1)
        head = text[start : start + cut].rstrip()
        if head:
            parts.append(head)
        start = _skip_space(text, start + cut)
    return [part for part in parts if part]


def _skip_space(text: str, index: int) -> int:
    size = len(text)
    while index < size and text[index].isspace():
        index += 1
    return index
