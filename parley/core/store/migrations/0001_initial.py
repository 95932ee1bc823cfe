import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="InboundKey",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("channel", fields.CharField(max_length=32)),
                ("key", fields.CharField(max_length=255)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "parley_inbound_key",
                "app": "parley",
                "unique_together": (("channel", "key"),),
                "pk_attr": "id",
                "table_description": "A platform delivery already seen, backs claim_inbound.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="User",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("display_name", fields.CharField(null=True, max_length=255)),
                ("memory", fields.TextField(null=True, unique=False)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "parley_user",
                "app": "parley",
                "pk_attr": "id",
                "table_description": "A person, across channels.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Conversation",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "parley.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="conversations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("channel", fields.CharField(max_length=32)),
                ("template_id", fields.CharField(max_length=128)),
                ("language", fields.CharField(max_length=16)),
                (
                    "status",
                    fields.CharField(
                        default="open", db_index=True, db_default="open", max_length=16
                    ),
                ),
                ("started_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("reason_ended", fields.CharField(null=True, max_length=255)),
                ("last_activity_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("turn_count", fields.IntField(default=0, db_default=0)),
                (
                    "state",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "parley_conversation",
                "app": "parley",
                "indexes": [Index(fields=["user_id", "channel", "status"])],
                "pk_attr": "id",
                "table_description": "A conversation between a user and a template's agents.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Identity",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "parley.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="identities",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("channel", fields.CharField(max_length=32)),
                ("external_id", fields.CharField(max_length=255)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "parley_identity",
                "app": "parley",
                "unique_together": (("channel", "external_id"),),
                "pk_attr": "id",
                "table_description": "How a user is known on one channel (e.g. a Telegram id).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "parley.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("seq", fields.BigIntField()),
                ("role", fields.CharField(max_length=16)),
                ("name", fields.CharField(null=True, max_length=255)),
                ("character_id", fields.CharField(null=True, max_length=128)),
                ("content", fields.TextField(unique=False)),
                (
                    "status",
                    fields.CharField(default="complete", db_default="complete", max_length=16),
                ),
                ("tokens_in", fields.IntField(null=True)),
                ("tokens_out", fields.IntField(null=True)),
                ("intent", fields.CharField(null=True, max_length=64)),
                ("lang", fields.CharField(null=True, max_length=16)),
                (
                    "metadata",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("channel", fields.CharField(null=True, max_length=32)),
                ("platform_message_id", fields.CharField(null=True, max_length=255)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "parley_message",
                "app": "parley",
                "unique_together": (("channel", "platform_message_id"),),
                "indexes": [
                    Index(fields=["conversation_id", "seq"]),
                    Index(fields=["channel", "status", "role"]),
                ],
                "pk_attr": "id",
                "table_description": "One message of a conversation, ordered by seq.",
            },
            bases=["Model"],
        ),
    ]
