"""The WhatsApp adapter: stores what Meta delivers, then answers it through the durable inbox.

Exactly once: every inbound message is stored as a ``pending`` user message keyed by its wamid
(unique per channel in the database) and put in the inbox (key: the wamid; lane: the sender)
before the webhook answers 200, so a repeated delivery, even a concurrent one, one to another
process or one after a restart, is a :class:`DuplicateMessage` and is skipped. Any process's
claim loop answers the item, one sender's messages one at a time and in order; when the process
answering it dies, another claims it again (see :mod:`parley.adapters.whatsapp.runner`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from parley.adapters.whatsapp.graph import GraphClient
from parley.adapters.whatsapp.payload import WhatsAppMessage
from parley.adapters.whatsapp.runner import TurnRunner
from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.adapters.whatsapp.webhook import webhook_routes
from parley.core import store
from parley.core.engine import Engine, Opened
from parley.core.locks import LocalLocks
from parley.core.store.records import MessageRecord

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext

__all__ = ["CHANNEL", "WhatsAppAdapter"]

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"


class WhatsAppAdapter:
    """Serves WhatsApp through Meta's Cloud API (webhook in, Graph API out)."""

    name = "whatsapp"

    def __init__(self, context: AdapterContext, settings: WhatsAppSettings) -> None:
        self.context = context
        self.settings = settings
        self.template_id = settings.template or None
        self.senders = LocalLocks()
        """One sender's conversation is resolved and written by one task at a time."""
        self.graph: GraphClient | None = None
        self.runner: TurnRunner | None = None

    @property
    def engine(self) -> Engine:
        """The engine (after start-up)."""
        return self.context.engine

    def route_handlers(self) -> list[Any]:
        """``GET`` and ``POST /webhooks/whatsapp``."""
        return webhook_routes(self.settings, self.intake)

    async def start(self) -> None:
        """Open the Graph client and answer this channel's inbox items.

        Messages stored ``pending`` by a version without the inbox are put in it now (by their
        wamid: a no-op for those already there, whichever process starts).
        """
        self.graph = GraphClient(self.settings)
        self.runner = TurnRunner(self, self.graph)
        self.context.inbox.register(  # started before the adapters
            CHANNEL, self.runner.answer_item, drain=self.settings.drain_timeout
        )
        for message in await store.pending_messages(CHANNEL):
            await self._enqueue(message)

    async def stop(self) -> None:
        """Close the Graph client (the runtime has stopped the inbox: running turns had
        ``drain_timeout`` seconds; the rest were given back to the inbox)."""
        if self.graph is not None:
            await self.graph.aclose()
        self.runner = self.graph = None

    # -- intake ----------------------------------------------------------------------------

    async def intake(self, messages: list[WhatsAppMessage]) -> int:
        """Store each new message as ``pending`` in the inbox; return how many were new."""
        if self.runner is None:
            raise RuntimeError("the WhatsApp adapter has not started")
        stored = 0
        for message in messages:
            record = await self._store(message)
            if record is not None:
                stored += 1
                await self._enqueue(record)
        return stored

    async def _enqueue(self, record: MessageRecord) -> None:
        """Put a stored message in the inbox (once per wamid)."""
        assert record.platform_message_id is not None
        sender = str(record.metadata.get("wa_id") or record.conversation_id)
        await self.context.inbox.put(
            CHANNEL,
            record.platform_message_id,
            f"{CHANNEL}:{sender}",
            payload={"message_id": record.id},
            conversation_id=record.conversation_id,
            user_message_id=record.id,
        )

    async def _store(self, message: WhatsAppMessage) -> MessageRecord | None:
        user = await store.get_or_create_user(
            CHANNEL, message.wa_id, display_name=message.profile_name
        )
        async with self.senders.hold(message.wa_id):
            opened = await self.open_conversation(user.id)
            metadata = message.metadata()
            trace = self.context.telemetry.received(  # the turn, in any process, joins it
                CHANNEL, **{"parley.platform_message_id": message.wamid}
            )
            if trace:
                metadata["trace"] = trace
            if opened.greeting is not None:
                metadata["greeting_id"] = opened.greeting.id
            try:
                return await store.add_message(
                    opened.conversation.id,
                    "user",
                    message.text,
                    status="pending",
                    lang=opened.conversation.language,
                    metadata=metadata,
                    channel=CHANNEL,
                    platform_message_id=message.wamid,
                )
            except store.DuplicateMessage:
                log.info("WhatsApp message %s already received: skipped", message.wamid)
                if not opened.resumed:
                    # Opened for nothing (a repeat of a message of an ended conversation).
                    await store.delete_conversation(opened.conversation.id)
                # Stored by a delivery that failed before its inbox item was: put it now.
                first = await store.find_message(CHANNEL, message.wamid)
                if first is not None and first.status == "pending":
                    await self._enqueue(first)
                return None

    async def open_conversation(self, user_id: str) -> Opened:
        """The sender's open WhatsApp conversation, or a new one (hold ``senders`` first)."""
        return await self.engine.resume_or_open(
            user_id, CHANNEL, template_id=self.template_id, greet=self.settings.greeting
        )
