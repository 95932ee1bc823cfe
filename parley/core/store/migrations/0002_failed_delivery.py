import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("parley", "0001_initial")]

    initial = False

    operations = [
        ops.CreateModel(
            name="FailedDelivery",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("url", fields.CharField(max_length=2048)),
                ("event", fields.CharField(max_length=64)),
                (
                    "payload",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("attempts", fields.IntField(default=0, db_default=0)),
                ("status_code", fields.IntField(null=True)),
                ("error", fields.TextField(null=True, unique=False)),
                (
                    "created_at",
                    fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "parley_failed_delivery",
                "app": "parley",
                "indexes": [Index(fields=["created_at"])],
                "pk_attr": "id",
                "table_description": "An outbound notification that failed after every retry, kept for inspection.",
            },
            bases=["Model"],
        ),
    ]
