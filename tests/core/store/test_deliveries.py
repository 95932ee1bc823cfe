"""Failed outbound deliveries, kept for inspection (the notify plugin writes them)."""

from __future__ import annotations

from parley.core import store


async def test_failed_deliveries_are_kept_newest_first(db: str) -> None:
    payload = {"event": "turn_completed", "messages": [{"content": "hé"}], "turn_count": 2}
    first = await store.add_failed_delivery(
        "https://a.test/hook",
        "turn_completed",
        payload,
        attempts=4,
        status_code=503,
        error="HTTP 503",
    )
    second = await store.add_failed_delivery(
        "https://b.test/hook", "conversation_ended", {}, attempts=1, error="ConnectError"
    )
    kept = await store.list_failed_deliveries()
    assert [d.id for d in kept] == [second.id, first.id]
    assert kept[1].payload == payload
    assert (kept[1].attempts, kept[1].status_code, kept[1].error) == (4, 503, "HTTP 503")
    assert (kept[0].status_code, kept[0].event) == (None, "conversation_ended")
    assert kept[0].created_at.tzinfo is not None
    assert [d.id for d in await store.list_failed_deliveries(limit=1)] == [second.id]
