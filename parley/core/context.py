"""Builds the LLM messages for one responder: persona prompt + memory + history window.

Stored tool calls come back as OpenAI expects them: the assistant message with ``tool_calls``,
then one ``tool`` message per call, then the reply's text.
"""

from __future__ import annotations

import copy
import re
import string
from typing import Any

from parley.core.config import Language, Persona
from parley.core.store.records import MessageRecord, UserRecord
from parley.core.tools import error_content

__all__ = ["build_messages", "is_termination", "user_content"]

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}¡¿…]+")


def user_content(text: str, image_urls: list[str]) -> str | list[dict[str, Any]]:
    """OpenAI message content: plain text, or text plus image parts for vision models."""
    if not image_urls:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return parts


def memory_note(memory: str) -> str:
    """What is remembered about the user, as it is added to a system prompt."""
    return f"\n\nWhat you remember about the user from earlier conversations:\n{memory}"


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
        system += memory_note(user.memory)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    results = {
        (m.metadata.get("reply_id"), m.metadata.get("tool_call_id")): m.content
        for m in history
        if m.role == "tool"
    }
    for message in history:
        if message.role == "user":
            if message.status in ("pending", "failed"):
                continue  # not taken by a turn yet, or unusable (a voice note STT failed on)
            images = message.metadata.get("images") or []
            messages.append({"role": "user", "content": user_content(message.content, images)})
        elif message.role == "assistant":
            if message.status == "failed":
                continue
            mine = message.character_id in (None, persona.id)
            if multi_character and not mine:
                if message.content:
                    content = f"[{message.name or message.character_id}]: {message.content}"
                    messages.append({"role": "user", "content": content})
                continue
            messages.extend(_tool_exchange(message, results))
            if message.content:
                messages.append({"role": "assistant", "content": message.content})
        # ``tool`` messages go in right after the call that asked for them (_tool_exchange).
    return messages


def _tool_exchange(
    message: MessageRecord, results: dict[tuple[Any, Any], str]
) -> list[dict[str, Any]]:
    """The assistant tool calls of a reply, each followed by its stored result.

    A call whose result is missing (cut off by a crash) gets an error result, so the messages
    stay valid for OpenAI: every ``tool_calls`` entry must be answered. The round's text is left
    out here; it is part of the reply's content that follows.
    """
    out: list[dict[str, Any]] = []
    for step in message.metadata.get("tool_steps") or []:
        calls = [c for c in step.get("calls") or [] if isinstance(c, dict) and c.get("id")]
        if not calls:
            continue
        # Copies: the stored records may be shared (the history window kept in memory), and a
        # before_llm plugin may edit the messages in place.
        calls = copy.deepcopy(calls)
        out.append({"role": "assistant", "content": None, "tool_calls": calls})
        for call in calls:
            content = results.get((message.id, call["id"]))
            if content is None:
                content = error_content("no result was recorded for this call")
            out.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return out


def _normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.casefold()).split())


def is_termination(text: str, language: Language) -> bool:
    """True when ``text`` is one of the language's termination phrases (case and punctuation aside)."""
    said = _normalise(text)
    return bool(said) and any(said == _normalise(p) for p in language.termination_phrases)
