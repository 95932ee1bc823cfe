"""One sender per socket: every outgoing frame, text or binary, leaves in order, from a task of
the socket's own.

Handing a frame to the outbox never waits for the network: a turn publishing its events to every
subscriber of a conversation is not held up by one socket's send (the WebSocket write and its
compression), and a slow client slows only itself. A client that stops reading while frames pile
up past ``MAX_QUEUED`` is closed (1008) rather than buffered without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import msgspec
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

__all__ = ["MAX_QUEUED", "Outbox"]

log = logging.getLogger(__name__)

_SEND_ERRORS = (WebSocketDisconnect, OSError, RuntimeError)
"""What a send to a socket the client has left raises (uvicorn, Litestar, the ASGI server)."""

MAX_QUEUED = 2000
"""Frames waiting for one socket at most (about 80 s of a spoken reply's audio at 40 ms a
chunk); past it the client is not reading and is closed."""


class Outbox:
    """Serialises sends on one socket; after the client is gone, sends return False."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
        self.open = True
        self._frames: deque[tuple[str | bytes | None, Any]] = deque()
        self._sender: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> bool:
        """Queue a JSON text frame; False when the socket is closed."""
        return self._put(msgspec.json.encode(frame).decode(), "text")

    async def send_bytes(self, data: bytes) -> bool:
        """Queue a binary frame; False when the socket is closed."""
        return self._put(data, "binary")

    def _put(self, data: str | bytes, mode: Any) -> bool:
        if not self.open:
            return False
        if len(self._frames) >= MAX_QUEUED:
            log.warning("a client stopped reading (%d frames waiting): closing it", MAX_QUEUED)
            self._frames.clear()
            self._frames.append((None, 1008))
            self.open = False
        else:
            self._frames.append((data, mode))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())
        return self.open

    async def _drain(self) -> None:
        try:
            while self._frames:
                data, mode = self._frames.popleft()
                if data is None:  # the client fell behind: close it
                    await self.socket.close(code=mode, reason="too slow")
                    return
                await self.socket.send_data(data, mode=mode)
        except _SEND_ERRORS:
            self.open = False
            self._frames.clear()
        finally:
            self._sender = None

    async def flush(self) -> None:
        """Wait until every queued frame has left (or the client is gone)."""
        while self._sender is not None:
            await asyncio.shield(self._sender)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the socket (once), after the frames queued before."""
        await self.flush()
        if not self.open:
            return
        self.open = False
        try:
            await self.socket.close(code=code, reason=reason)
        except _SEND_ERRORS:
            log.debug("socket already closed")
