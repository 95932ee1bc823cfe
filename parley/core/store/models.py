"""Tortoise models. Only the ``parley.core.store`` modules query them; everything else sees records.

After changing a model, regenerate the migrations (see ``parley.core.store.migration_config``).
The first docstring line of a model becomes its table comment: keep it short (it lands in the
generated migration) and never put ``;`` in it (Tortoise 1.1.9 splits DDL on semicolons).
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.models import Model

__all__ = [
    "APP_LABEL",
    "Conversation",
    "FailedDelivery",
    "Identity",
    "InboundKey",
    "InboxItem",
    "Message",
    "OutboundSend",
    "User",
    "tortoise_config",
]

APP_LABEL = "parley"


def tortoise_config(db: str | dict[str, Any]) -> dict[str, Any]:
    """The Tortoise config for ``db`` (a URL, or a connection's config): one connection, the
    store's models and migrations."""
    return {
        "connections": {"default": db},
        "apps": {
            APP_LABEL: {
                "models": ["parley.core.store.models"],
                "migrations": "parley.core.store.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


class User(Model):
    """A person, across channels."""

    id = fields.UUIDField(primary_key=True)
    display_name = fields.CharField(max_length=255, null=True)
    memory = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())

    identities: fields.ReverseRelation[Identity]
    conversations: fields.ReverseRelation[Conversation]

    class Meta:
        table = "parley_user"


class Identity(Model):
    """How a user is known on one channel (e.g. a Telegram id)."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "parley.User", related_name="identities", on_delete=fields.CASCADE
    )
    channel = fields.CharField(max_length=32)
    external_id = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())

    class Meta:
        table = "parley_identity"
        unique_together = (("channel", "external_id"),)


class Conversation(Model):
    """A conversation between a user and a template's agents."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "parley.User", related_name="conversations", on_delete=fields.CASCADE
    )
    channel = fields.CharField(max_length=32)
    template_id = fields.CharField(max_length=128)
    language = fields.CharField(max_length=16)
    status = fields.CharField(max_length=16, default="open", db_default="open", db_index=True)
    started_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)
    reason_ended = fields.CharField(max_length=255, null=True)
    last_activity_at = fields.DatetimeField()
    turn_count = fields.IntField(default=0, db_default=0)
    state = fields.JSONField(default=dict)
    expires_at = fields.DatetimeField(null=True)

    messages: fields.ReverseRelation[Message]

    class Meta:
        table = "parley_conversation"
        indexes = [Index(fields=("user_id", "channel", "status"))]


class Message(Model):
    """One message of a conversation, ordered by seq.

    ``seq`` comes from the database sequence parley_message_seq on PostgreSQL (one order for every
    process and host); on SQLite (one process) from a nanosecond clock forced strictly increasing.
    """

    id = fields.UUIDField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "parley.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    seq = fields.BigIntField()
    role = fields.CharField(max_length=16)
    name = fields.CharField(max_length=255, null=True)
    character_id = fields.CharField(max_length=128, null=True)
    content = fields.TextField()
    status = fields.CharField(max_length=16, default="complete", db_default="complete")
    tokens_in = fields.IntField(null=True)
    tokens_out = fields.IntField(null=True)
    intent = fields.CharField(max_length=64, null=True)
    lang = fields.CharField(max_length=16, null=True)
    metadata = fields.JSONField(default=dict)
    channel = fields.CharField(max_length=32, null=True)
    platform_message_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "parley_message"
        unique_together = (("channel", "platform_message_id"),)
        indexes = [
            Index(fields=("conversation_id", "seq")),
            Index(fields=("channel", "status", "role")),
        ]


class InboundKey(Model):
    """A platform delivery already seen, backs claim_inbound.

    ``key`` is e.g. a Telegram update_id. The unique pair makes concurrent claims race-safe.
    """

    id = fields.UUIDField(primary_key=True)
    channel = fields.CharField(max_length=32)
    key = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())

    class Meta:
        table = "parley_inbound_key"
        unique_together = (("channel", "key"),)


class InboxItem(Model):
    """An inbound message or job, stored before it is acknowledged and claimed under a lease.

    ``id`` comes from the database's sequence: it is the order of arrival. Only the oldest
    unfinished item of a ``lane`` (a chat, a sender, a conversation) may be claimed, so a lane's
    items are answered one at a time and in order, whichever process claims them.
    """

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=32)
    key = fields.CharField(max_length=255)
    lane = fields.CharField(max_length=255)
    status = fields.CharField(max_length=16, default="queued", db_default="queued")
    claimed_by = fields.CharField(max_length=128, null=True)
    lease_until = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0, db_default=0)
    payload = fields.JSONField(default=dict)
    result = fields.JSONField(default=dict)
    conversation_id = fields.UUIDField(null=True)
    user_message_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())
    done_at = fields.DatetimeField(null=True)

    class Meta:
        table = "parley_inbox"
        unique_together = (("channel", "key"),)
        indexes = [Index(fields=("status", "id")), Index(fields=("lane", "id"))]


class OutboundSend(Model):
    """One part of a reply delivered to a platform, so a retried turn does not send it again."""

    id = fields.UUIDField(primary_key=True)
    channel = fields.CharField(max_length=32)
    key = fields.CharField(max_length=255)
    platform_id = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())

    class Meta:
        table = "parley_outbound_send"
        unique_together = (("channel", "key"),)


class FailedDelivery(Model):
    """An outbound notification that failed after every retry, kept for inspection."""

    id = fields.UUIDField(primary_key=True)
    url = fields.CharField(max_length=2048)
    event = fields.CharField(max_length=64)
    payload = fields.JSONField(default=dict)
    attempts = fields.IntField(default=0, db_default=0)
    status_code = fields.IntField(null=True)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_default=Now())

    class Meta:
        table = "parley_failed_delivery"
        indexes = [Index(fields=("created_at",))]
