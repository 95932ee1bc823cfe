"""The last messages of recent conversations, kept in memory for the LLM's history window.

A turn reads its conversation's last messages before the LLM request; with this cache that read
costs no SQL. It is write-through: the store's own writes (:mod:`parley.core.store.messages`,
:func:`~parley.core.store.conversations.delete_conversation`) add, replace or drop entries after
the database accepted them, so an entry is always what a SELECT would return.

It is on only where this process is the database's one writer: SQLite (``parley serve
--workers`` refuses SQLite). On PostgreSQL other processes write the same conversations, so
every read goes to the database. Records handed out are shared: treat them as read-only (they are
frozen dataclasses; do not mutate their ``metadata``).

Whatever the database, it stamps each recent conversation when this process adds, updates or
moves one of its messages (:meth:`Windows.written`): a window read along with a message
(:class:`ReadWindow`, PostgreSQL) is used only while the stamp is the one it was read with.
``set_message_fields`` (a reply's own edits on its hot path) leaves no stamp.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley.core.store.records import MessageRecord

__all__ = ["MAX_CONVERSATIONS", "MAX_MESSAGES", "ReadWindow", "Windows", "windows"]

MAX_CONVERSATIONS = 4096
"""Conversations kept (least recently used dropped first)."""

MAX_MESSAGES = 200
"""Messages kept per conversation at most (a longer window is read from the database)."""


@dataclass(slots=True)
class _Entry:
    seqs: list[int] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    capacity: int = 0
    complete: bool = False
    """Holds every message of the conversation (any window can be served)."""


class Windows:
    """Per conversation, its last messages in ``seq`` order (see the module's docstring)."""

    def __init__(self) -> None:
        self.enabled = False
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._where: dict[str, str] = {}
        """Conversation id of each message kept."""
        self._written: OrderedDict[str, int] = OrderedDict()
        """The stamp of each recent conversation's last message write (the cache on or off)."""
        self._stamps = itertools.count(1)

    def written(self, conversation_id: str) -> int:
        """The stamp of this process's last write to the conversation's messages: a number that
        changes with every write and never comes back (0 when none is remembered: a conversation
        not written lately, or everything forgotten, which no stamp read before matches)."""
        return self._written.get(conversation_id, 0)

    def wrote(self, conversation_id: str) -> None:
        """A message of the conversation was added, updated or moved: stamp it anew."""
        self._written[conversation_id] = next(self._stamps)
        self._written.move_to_end(conversation_id)
        if len(self._written) > MAX_CONVERSATIONS:
            self._written.popitem(last=False)

    def reset(self, *, enabled: bool) -> None:
        """Forget everything (the store connected to another database, or closed)."""
        self.enabled = enabled
        self.drop()

    def get(self, conversation_id: str, limit: int) -> list[MessageRecord] | None:
        """The last ``limit`` messages, oldest first, or None when they are not all known."""
        entry = self._entries.get(conversation_id)
        if entry is None or (limit > entry.capacity and not entry.complete):
            return None
        self._entries.move_to_end(conversation_id)
        return entry.messages[-limit:] if limit else []

    def fill(self, conversation_id: str, limit: int, rows: list[tuple[int, MessageRecord]]) -> None:
        """Keep what a read of the last ``limit`` messages returned (``(seq, record)``, oldest
        first)."""
        if not self.enabled or limit > MAX_MESSAGES:
            return
        self.drop(conversation_id)
        self._where.update((record.id, conversation_id) for _, record in rows)
        self._entries[conversation_id] = _Entry(
            seqs=[seq for seq, _ in rows],
            messages=[record for _, record in rows],
            capacity=limit,
            complete=len(rows) < limit,
        )
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > MAX_CONVERSATIONS:
            self.drop(next(iter(self._entries)))

    def added(self, seq: int, message: MessageRecord) -> None:
        """A message was stored (placed by its ``seq``: concurrent writes may finish out of
        order)."""
        self.wrote(message.conversation_id)
        entry = self._entries.get(message.conversation_id)
        if entry is None:
            return
        at = bisect.bisect(entry.seqs, seq)
        entry.seqs.insert(at, seq)
        entry.messages.insert(at, message)
        self._where[message.id] = message.conversation_id
        if len(entry.seqs) > entry.capacity:
            del entry.seqs[0]
            self._where.pop(entry.messages.pop(0).id, None)
            entry.complete = False

    def replaced(self, message: MessageRecord) -> None:
        """A stored message changed (same ``seq``)."""
        self.wrote(message.conversation_id)
        self.changed(message.id, lambda _known: message)

    def set(self, message_id: str, fields: dict[str, Any]) -> None:
        """Fields of a stored message were set (without reading it back)."""
        self.changed(message_id, lambda known: dataclasses.replace(known, **fields))

    def changed(self, message_id: str, change: Callable[[MessageRecord], MessageRecord]) -> None:
        """Replace a kept message by ``change(message)``."""
        entry = self._entries.get(self._where.get(message_id, ""))
        if entry is None:
            return
        for i, known in enumerate(entry.messages):
            if known.id == message_id:
                entry.messages[i] = change(known)
                return

    def drop(self, conversation_id: str | None = None) -> None:
        """Forget one conversation (its messages moved or were erased), or all of them."""
        if conversation_id is None:
            self._entries.clear()
            self._where.clear()
            self._written.clear()
            return
        entry = self._entries.pop(conversation_id, None)
        for message in entry.messages if entry else ():
            self._where.pop(message.id, None)


@dataclass(frozen=True, slots=True)
class ReadWindow:
    """A conversation's last messages, read along with a new one
    (:func:`~parley.core.store.add_message_and_window`)."""

    conversation_id: str
    messages: list[MessageRecord]
    written: int
    """:meth:`Windows.written` with the read's own write (0: already stale)."""

    def current(self) -> list[MessageRecord] | None:
        """The messages, or None once this process has written one of the conversation's
        messages since the read (read the window again)."""
        if not self.written:
            return None
        if windows.written(self.conversation_id) != self.written:
            return None
        return self.messages


windows = Windows()
"""The process's cache, switched on by :func:`parley.core.store.connect` on SQLite."""
