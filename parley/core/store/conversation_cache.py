"""Conversation records kept in memory, where this process is the database's one writer (SQLite).

A turn reads its conversation under the conversation's lock before it stores the user's message;
with this cache that read costs no SQL from the second turn on. Every write of a conversation goes
through :mod:`parley.core.store.conversations`, which tells the cache after the database accepted
it. Each conversation has a *version*, a number from one process-wide counter that changes at
each of its writes, once the database accepted it: an operation notes the version before it
starts and keeps its record only if no other write of the conversation was counted meanwhile, and
a write counted later makes the kept record stale. So an entry in use is always what a SELECT
would return.

It is on only on SQLite (``parley serve --workers`` refuses SQLite); on PostgreSQL other
processes write the same conversations, and every read goes to the database. Records handed out
carry a copy of ``state``: editing it changes nothing stored (use ``update_state``).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from parley.core.store.records import ConversationRecord

__all__ = ["MAX_CONVERSATIONS", "ConversationCache", "Write", "conversations"]

MAX_CONVERSATIONS = 16384
"""Conversations whose version (and record) is kept, least recently used dropped first."""


@dataclass(slots=True)
class Write:
    """What a write of a conversation tells the cache when it is done (see
    :meth:`ConversationCache.writing`): the record as it is now, or the fields it set."""

    record: ConversationRecord | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class ConversationCache:
    """Per conversation, its version and, when known, its current record."""

    def __init__(self) -> None:
        self.enabled = False
        self._counter = count(1)
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._records: dict[str, tuple[ConversationRecord, int]] = {}

    def reset(self, *, enabled: bool) -> None:
        """Forget everything (the store connected to another database, or closed)."""
        self.enabled = enabled
        self._versions.clear()
        self._records.clear()

    def version(self, conversation_id: str) -> int:
        """The conversation's version now: note it before reading or writing the conversation."""
        if not self.enabled:
            return 0
        version = self._versions.get(conversation_id)
        if version is None:
            version = self._versions[conversation_id] = next(self._counter)
            self._trim()
        else:
            self._versions.move_to_end(conversation_id)
        return version

    def get(self, conversation_id: str) -> ConversationRecord | None:
        """The kept record, if it is current (with its own copy of ``state``)."""
        if not self.enabled:
            return None
        kept = self._records.get(conversation_id)
        if kept is None or self._versions.get(conversation_id) != kept[1]:
            return None
        self._versions.move_to_end(conversation_id)
        return _own(kept[0])

    def read(self, record: ConversationRecord, version: int) -> None:
        """``record`` was read from the database, ``version`` noted before the read."""
        if self.enabled and self._versions.get(record.id) == version:
            self._records[record.id] = (_own(record), version)

    @contextmanager
    def writing(self, conversation_id: str) -> Iterator[Write]:
        """Around a write of the conversation: the version is noted before it, and when it ends
        (accepted or failed) the cache keeps what the write set on :class:`Write`, if no other
        write came in between; otherwise it forgets the conversation."""
        version = self.version(conversation_id)
        write = Write()
        try:
            yield write
        finally:
            if write.fields:
                self.changed(conversation_id, version, **write.fields)
            else:
                self.wrote(conversation_id, version, write.record)

    def wrote(self, conversation_id: str, version: int, record: ConversationRecord | None) -> None:
        """The conversation was written (``version`` noted before; call it once the database
        accepted the write, or failed it); ``record``: the conversation as it is now (None: not
        known). Kept only when no other write of it came in between."""
        if not self.enabled:
            return
        alone = self._versions.get(conversation_id) == version
        new = self._versions[conversation_id] = next(self._counter)
        self._versions.move_to_end(conversation_id)
        self._trim()
        if record is not None and alone:
            self._records[conversation_id] = (_own(record), new)
        else:
            self._records.pop(conversation_id, None)

    def changed(self, conversation_id: str, version: int, **fields: object) -> None:
        """Fields of the conversation were set (``version`` noted before): the kept record, if
        it was current, takes them."""
        if not self.enabled:
            return
        kept = self._records.get(conversation_id)
        record = None
        if kept is not None and kept[1] == version:
            record = dataclasses.replace(kept[0], **fields)  # type: ignore[arg-type]
        self.wrote(conversation_id, version, record)

    def _trim(self) -> None:
        while len(self._versions) > MAX_CONVERSATIONS:
            dropped, _ = self._versions.popitem(last=False)
            self._records.pop(dropped, None)


def _own(record: ConversationRecord) -> ConversationRecord:
    """``record`` with a ``state`` of its own (the caller's dict may change later)."""
    return dataclasses.replace(record, state=dict(record.state))


conversations = ConversationCache()
"""The process's cache (:func:`parley.core.store.connect` turns it on for SQLite)."""
