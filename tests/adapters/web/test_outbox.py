"""The socket's outbox: handing it a frame never waits for the network, frames leave in order,
close comes after what was queued, and a client that stops reading is closed, not buffered
without end. The peer is a stand-in for Litestar's WebSocket whose sends can be held."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.adapters.web import outbox as outbox_module
from parley.adapters.web.outbox import Outbox


class HeldSocket:
    """What the outbox uses of a WebSocket: ``send_data`` (held until released) and ``close``."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed: tuple[int, str | None] | None = None
        self.released = asyncio.Event()

    async def send_data(self, data: Any, mode: str = "text") -> None:
        await self.released.wait()
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)


async def test_sends_do_not_wait_and_leave_in_order_before_the_close() -> None:
    socket = HeldSocket()
    box = Outbox(socket)  # type: ignore[arg-type]
    async with asyncio.timeout(1):  # the network is held: queuing must not wait for it
        for i in range(5):
            assert await box.send({"n": i})
        assert await box.send_bytes(b"audio")
    closing = asyncio.create_task(box.close(1000, "bye"))
    await asyncio.sleep(0.01)
    assert socket.sent == [] and socket.closed is None  # the close waits for the frames
    socket.released.set()
    await closing
    assert socket.sent == [*(f'{{"n":{i}}}' for i in range(5)), b"audio"]
    assert socket.closed == (1000, "bye")
    assert not await box.send({"late": True})


async def test_a_client_that_stops_reading_is_closed(monkeypatch) -> None:
    monkeypatch.setattr(outbox_module, "MAX_QUEUED", 10)
    socket = HeldSocket()
    box = Outbox(socket)  # type: ignore[arg-type]
    results = [await box.send({"n": i}) for i in range(12)]
    assert results[:10] == [True] * 10 and results[10:] == [False, False]
    socket.released.set()
    await box.flush()
    assert socket.closed == (1008, "too slow")
