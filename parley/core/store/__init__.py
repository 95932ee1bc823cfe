"""Persistence: the only code that queries the ORM; every function returns plain records.

Lifecycle: ``await connect(db_url)`` once at start-up (applies pending migrations),
``await close()`` at shutdown (aiosqlite otherwise keeps the process alive at exit).
Functions that must act on a row that does not exist (``update_*``, ``end_conversation``,
``set_user_memory``) raise :class:`LookupError`; getters return None instead.
"""

from parley.core.store._common import DuplicateMessage
from parley.core.store.conversations import (
    delete_conversation,
    end_conversation,
    find_open_conversation,
    get_conversation,
    list_conversations,
    start_conversation,
    update_conversation,
    update_state,
)
from parley.core.store.db import close, connect, migrate, ping
from parley.core.store.deliveries import add_failed_delivery, list_failed_deliveries
from parley.core.store.inbox import (
    claim_inbox,
    claim_inbox_item,
    finish_inbox,
    get_inbox,
    inbox_items,
    prune_inbox,
    put_inbox,
    record_send,
    release_inbox,
    renew_inbox,
    sent,
    update_inbox,
)
from parley.core.store.messages import (
    add_message,
    claim_inbound,
    count_messages,
    get_message,
    latest_message,
    list_messages,
    pending_messages,
    prune_inbound,
    recent_messages,
    set_message_fields,
    settle_abandoned,
    update_message,
)
from parley.core.store.records import (
    ConversationRecord,
    FailedDeliveryRecord,
    InboxRecord,
    MessageRecord,
    UserRecord,
)
from parley.core.store.users import (
    get_or_create_user,
    get_user,
    move_identity,
    set_user_memory,
)

__all__ = [
    "ConversationRecord",
    "DuplicateMessage",
    "FailedDeliveryRecord",
    "InboxRecord",
    "MessageRecord",
    "UserRecord",
    "add_failed_delivery",
    "add_message",
    "claim_inbound",
    "claim_inbox",
    "claim_inbox_item",
    "close",
    "connect",
    "count_messages",
    "delete_conversation",
    "end_conversation",
    "find_open_conversation",
    "finish_inbox",
    "get_conversation",
    "get_inbox",
    "get_message",
    "get_or_create_user",
    "get_user",
    "inbox_items",
    "latest_message",
    "list_conversations",
    "list_failed_deliveries",
    "list_messages",
    "migrate",
    "move_identity",
    "pending_messages",
    "ping",
    "prune_inbound",
    "prune_inbox",
    "put_inbox",
    "recent_messages",
    "record_send",
    "release_inbox",
    "renew_inbox",
    "sent",
    "set_message_fields",
    "set_user_memory",
    "settle_abandoned",
    "start_conversation",
    "update_conversation",
    "update_inbox",
    "update_message",
    "update_state",
]
