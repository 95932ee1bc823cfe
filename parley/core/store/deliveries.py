"""Outbound deliveries that failed for good, kept for inspection."""

from __future__ import annotations

from typing import Any

from parley.core.store._common import (
    _now,
    _utc,
)
from parley.core.store.models import (
    FailedDelivery,
)
from parley.core.store.records import (
    FailedDeliveryRecord,
)

__all__ = ["add_failed_delivery", "list_failed_deliveries"]


def _delivery_record(row: FailedDelivery) -> FailedDeliveryRecord:
    return FailedDeliveryRecord(
        id=str(row.id),
        url=row.url,
        event=row.event,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
        status_code=row.status_code,
        error=row.error,
        created_at=_utc(row.created_at),
    )


async def add_failed_delivery(
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    attempts: int,
    status_code: int | None = None,
    error: str | None = None,
) -> FailedDeliveryRecord:
    """Keep a notification that failed after its retries."""
    row = await FailedDelivery.create(
        url=url,
        event=event,
        payload=dict(payload),
        attempts=attempts,
        status_code=status_code,
        error=error,
        created_at=_now(),
    )
    return _delivery_record(row)


async def list_failed_deliveries(*, limit: int = 100) -> list[FailedDeliveryRecord]:
    """Failed notifications, newest first."""
    rows = await FailedDelivery.all().order_by("-created_at").limit(max(limit, 0))
    return [_delivery_record(row) for row in rows]
