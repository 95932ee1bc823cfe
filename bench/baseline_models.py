"""The baseline's two tables (a module of their own, so Tortoise finds them by name however
``baseline.py`` is started)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class BaseConversation(Model):
    """One device's conversation."""

    id = fields.UUIDField(primary_key=True)
    device = fields.CharField(max_length=128, unique=True)

    class Meta:
        table = "base_conversation"


class BaseMessage(Model):
    """A stored message."""

    id = fields.UUIDField(primary_key=True)
    conversation_id = fields.UUIDField(db_index=True)
    role = fields.CharField(max_length=16)
    content = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "base_message"
        indexes = [("conversation_id", "created_at")]
