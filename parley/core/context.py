"""Builds the LLM messages for one responder: persona prompt + memory + history window."""

from __future__ import annotations

import re
import string
from typing import Any

from parley.core.config import Language, Persona
from parley.core.store.records import MessageRecord, UserRecord

__all__ = ["build_messages", "is_termination", "user_content"]

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}¡¿…]+")


def user_content(text: str, image_urls: list[str]) -> str | list[dict[str, Any]]:
    """OpenAI message content: plain text, or text plus image parts for vision models."""
    if not image_urls:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return parts


def build_messages(
    persona: Persona,
    language: str,
    history: list[MessageRecord],
    *,
    user: UserRecord | None = None,
    multi_character: bool = False,
) -> list[dict[str, Any]]:
    """System prompt in ``language`` (plus what is remembered about the user), then ``history``.

    In a multi-character conversation the other characters' replies are labelled with their names,
    so each character sees who said what. User messages still ``pending`` (stored by an adapter
    ahead of their turn) and ``failed`` ones are left out.
    """
    system = persona.prompt_for(language)
    if user is not None and user.memory:
        system += f"\n\nWhat you remember about the user from earlier conversations:\n{user.memory}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in history:
        if message.role == "user":
            if message.status in ("pending", "failed"):
                continue  # not taken by a turn yet, or unusable (a voice note STT failed on)
            images = message.metadata.get("images") or []
            messages.append({"role": "user", "content": user_content(message.content, images)})
        elif message.role == "assistant":
            if message.status == "failed" or not message.content:
                continue
            mine = message.character_id in (None, persona.id)
            if multi_character and not mine:
                content = f"[{message.name or message.character_id}]: {message.content}"
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": message.content})
    return messages


def _normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.casefold()).split())


def is_termination(text: str, language: Language) -> bool:
    """True when ``text`` is one of the language's termination phrases (case and punctuation aside)."""
    said = _normalise(text)
    return bool(said) and any(said == _normalise(p) for p in language.termination_phrases)
