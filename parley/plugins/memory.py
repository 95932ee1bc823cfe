"""Built-in plugin ``memory`` (off by default): what the agent learned about a user, kept.

With ``memory.enabled``, when a conversation ends (and every ``memory.every_turns`` turns) the LLM
updates a short summary of what it learned about the user, in the background; it is stored on the
user (``store.set_user_memory``) and this plugin adds it to the system prompt of that user's later
conversations (``before_llm``; read at most once every ``REMEMBERED_FOR`` seconds per user, so a
turn does not read the user's row). With memory off nothing is added. :func:`erase_memory`
forgets it; ``DELETE /api/v1/users/{user_id}/memory`` calls it for a trusted caller holding
``memory.erase_token``.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import delete
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, HeaderParameter
from msgspec import Meta

from parley.core import store
from parley.core.background import BackgroundTasks
from parley.core.config import ModelSettings
from parley.core.context import memory_note
from parley.core.hookspecs import hookimpl
from parley.core.locks import LocalLocks
from parley.core.plugin_context import PluginContext
from parley.core.providers import LLMProvider, LLMRequest, ProviderError
from parley.core.store.records import ConversationRecord, MessageRecord
from parley.openapi import errors

__all__ = ["MemoryPlugin", "MemorySettings", "erase_memory", "erase_memory_route", "transcript"]

log = logging.getLogger(__name__)

SUMMARY_PROMPT = """\
You keep a short memory about a user for an assistant's future conversations with them.
Update the memory with what this conversation taught you about the user: name, preferences,
circumstances, goals, things to follow up on. Keep what is still true, drop what the user
corrected, leave out small talk and anything about the assistant itself. Write plain
sentences, at most {max_words} words. Answer with the memory only, or NONE if there is nothing
worth remembering."""

NOTHING = "NONE"

REMEMBERED_FOR = 60.0
"""Seconds a user's memory, once read, is used without reading it again. A change made in this
process (a summary, an erase by any route) applies at once; one made by another process within
this time."""

_REMEMBERED_MAX = 10_000


@dataclass(slots=True)
class MemorySettings:
    """``[memory]``: the user memory plugin."""

    enabled: bool = False
    """Summarise conversations into the user's memory."""
    every_turns: Annotated[int, Meta(ge=0)] = 0
    """Also summarise every N turns (0: only when the conversation ends)."""
    max_words: Annotated[int, Meta(ge=10)] = 120
    """Upper bound on the memory's length asked of the LLM."""
    history: Annotated[int, Meta(ge=2)] = 100
    """How many of the conversation's latest messages the summary reads."""
    model: str | None = None
    """Model for the summaries (default ``llm.model``)."""
    erase_token: str = ""
    """Bearer token for ``DELETE /api/v1/users/{user_id}/memory``; empty: the route is off."""
    shutdown_grace: Annotated[float, Meta(ge=0)] = 10.0
    """Seconds a summary still running at shutdown may take before it is cancelled."""


async def erase_memory(user_id: str) -> bool:
    """Forget what is remembered about the user; False when there is no such user."""
    try:
        await store.set_user_memory(user_id, None)
    except LookupError:
        return False
    return True


@delete(
    "/api/v1/users/{user_id:str}/memory",
    status_code=204,
    tags=["memory"],
    responses=errors(400, 401, 403, 404, 503),
)
async def erase_memory_route(
    user_id: FromPath[str],
    context: NamedDependency[PluginContext],
    authorization: Annotated[str | None, HeaderParameter(name="Authorization")] = None,
) -> None:
    """Erase a user's memory. For a trusted backend: ``Authorization: Bearer <memory.erase_token>``."""
    token = context.section("memory", MemorySettings).erase_token
    if not token:
        raise PermissionDeniedException("erasing memory over HTTP is off: set memory.erase_token")
    if not hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
        raise NotAuthorizedException("a valid Authorization: Bearer token is required")
    if not await erase_memory(user_id):
        raise NotFoundException("no such user")


def transcript(messages: list[MessageRecord]) -> str:
    """The user's and the assistant's words, one line each."""
    lines = []
    for message in messages:
        if not message.content or message.status == "failed":
            continue
        if message.role == "user":
            lines.append(f"User: {message.content}")
        elif message.role == "assistant":
            lines.append(f"{message.name or 'Assistant'}: {message.content}")
    return "\n".join(lines)


class MemoryPlugin:
    """One instance per plugin manager; inert until ``startup`` finds ``memory.enabled``."""

    def __init__(self) -> None:
        self.context: PluginContext | None = None
        self.tasks = BackgroundTasks("memory")
        self._locks = LocalLocks()
        self._remembered: dict[str, tuple[float, int, str | None]] = {}
        """user id -> (when read, ``store.memory_writes()`` then, memory)."""

    @hookimpl
    def register_routes(self, register: Callable[..., None]) -> None:
        """Mount the erase route (it works whether or not summaries are on)."""
        register(erase_memory_route)

    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        """Declare ``[memory]`` so a bad value stops start-up."""
        register("memory", MemorySettings)

    @property
    def settings(self) -> MemorySettings | None:
        """``[memory]`` as the settings are now (a reload included); None while disabled."""
        if self.context is None:
            return None
        settings = self.context.section("memory", MemorySettings)  # validated at collect time
        return settings if settings.enabled else None

    @property
    def llm(self) -> LLMProvider | None:
        """The runtime's LLM."""
        return self.context.llm if self.context else None

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Keep the context: ``[memory]`` is read from it at each use (reloads included)."""
        self.context = context
        self.tasks = context.tasks("memory")

    @hookimpl
    async def shutdown(self) -> None:
        """Let running summaries finish (up to ``memory.shutdown_grace``), then cancel them."""
        await self.tasks.drain(self.settings.shutdown_grace if self.settings else 0)

    @hookimpl
    async def before_llm(
        self, conversation: ConversationRecord, messages: list[dict[str, Any]]
    ) -> None:
        """Add what is remembered about the user to the system prompt (memory on only)."""
        if self.settings is None or not messages or messages[0].get("role") != "system":
            return
        memory = await self.remembered(conversation.user_id)
        if memory:
            messages[0] = {**messages[0], "content": messages[0]["content"] + memory_note(memory)}

    async def remembered(self, user_id: str) -> str | None:
        """The user's memory, read again after ``REMEMBERED_FOR`` seconds or a change here."""
        now, writes = time.monotonic(), store.memory_writes()
        known = self._remembered.get(user_id)
        if known is not None and now - known[0] < REMEMBERED_FOR and known[1] == writes:
            return known[2]
        user = await store.get_user(user_id)
        if len(self._remembered) >= _REMEMBERED_MAX:
            self._remembered.clear()
        memory = user.memory if user else None
        self._remembered[user_id] = (now, writes, memory)
        return memory

    @hookimpl
    def turn_completed(self, conversation: ConversationRecord) -> None:
        """Every ``memory.every_turns`` turns of an open conversation, summarise it."""
        every = self.settings.every_turns if self.settings else 0
        if every and conversation.is_open and conversation.turn_count % every == 0:
            self._schedule(conversation)

    @hookimpl
    def conversation_ended(self, conversation: ConversationRecord) -> None:
        """Summarise the conversation that just ended."""
        if self.settings is not None:
            self._schedule(conversation)

    def _schedule(self, conversation: ConversationRecord) -> None:
        self.tasks.spawn(
            self.summarise(conversation.id, conversation.user_id),
            name=f"memory:{conversation.id}",
        )

    async def summarise(self, conversation_id: str, user_id: str) -> str | None:
        """Update the user's memory from the conversation; return it (None when unchanged)."""
        if self.settings is None or self.llm is None:
            return None
        async with self._locks.hold(user_id):  # one at a time per user: the later sees the earlier
            try:
                return await self._summarise(self.settings, self.llm, conversation_id, user_id)
            except ProviderError as exc:
                log.warning("memory: summary of %s failed: %s", conversation_id, exc.message)
                return None

    async def _summarise(
        self, settings: MemorySettings, llm: LLMProvider, conversation_id: str, user_id: str
    ) -> str | None:
        user = await store.get_user(user_id)
        messages = await store.recent_messages(conversation_id, settings.history)
        if user is None or not any(m.role == "user" and m.content for m in messages):
            return None
        known = user.memory or "(nothing yet)"
        request = LLMRequest(
            messages=[
                {"role": "system", "content": SUMMARY_PROMPT.format(max_words=settings.max_words)},
                {
                    "role": "user",
                    "content": f"Current memory:\n{known}\n\nConversation:\n{transcript(messages)}",
                },
            ],
            model=ModelSettings(model=settings.model, temperature=0.2, max_tokens=400),
        )
        chunks = llm.stream(request)
        async with aclosing(chunks):  # type: ignore[type-var]
            summary = "".join([chunk.text async for chunk in chunks]).strip()
        if not summary or summary.strip(" .").upper() == NOTHING:
            return None
        await store.set_user_memory(user_id, summary)
        log.info("memory: updated for user %s from conversation %s", user_id, conversation_id)
        return summary
