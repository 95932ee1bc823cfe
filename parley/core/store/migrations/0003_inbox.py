import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


async def message_sequence(apps, schema_editor):
    """PostgreSQL: messages are ordered by a database sequence (one order for every process).

    It starts above every ``seq`` stored so far (a nanosecond clock), so old messages keep
    their place. SQLite serves one process and keeps the in-process clock.
    """
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script("CREATE SEQUENCE IF NOT EXISTS parley_message_seq")
    await client.execute_script(
        "SELECT setval('parley_message_seq', GREATEST("
        "(SELECT COALESCE(MAX(seq), 0) FROM parley_message),"
        " (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000)::bigint))"
    )


class Migration(migrations.Migration):
    dependencies = [("parley", "0002_failed_delivery")]

    initial = False

    operations = [
        ops.CreateModel(
            name="InboxItem",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("channel", fields.CharField(max_length=32)),
                ("key", fields.CharField(max_length=255)),
                ("lane", fields.CharField(max_length=255)),
                ("status", fields.CharField(default="queued", db_default="queued", max_length=16)),
                ("claimed_by", fields.CharField(null=True, max_length=128)),
                (
                    "lease_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("attempts", fields.IntField(default=0, db_default=0)),
                (
                    "payload",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "result",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("conversation_id", fields.UUIDField(null=True)),
                ("user_message_id", fields.UUIDField(null=True)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
                ("done_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "parley_inbox",
                "app": "parley",
                "unique_together": (("channel", "key"),),
                "indexes": [Index(fields=["status", "id"]), Index(fields=["lane", "id"])],
                "pk_attr": "id",
                "table_description": "An inbound message or job, stored before it is acknowledged and claimed under a lease.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OutboundSend",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("channel", fields.CharField(max_length=32)),
                ("key", fields.CharField(max_length=255)),
                ("platform_id", fields.CharField(null=True, max_length=255)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "parley_outbound_send",
                "app": "parley",
                "unique_together": (("channel", "key"),),
                "pk_attr": "id",
                "table_description": "One part of a reply delivered to a platform, so a retried turn does not send it again.",
            },
            bases=["Model"],
        ),
        ops.RunPython(message_sequence),
    ]
