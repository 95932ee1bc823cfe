"""One sender per socket: every outgoing frame, text or binary, goes through one lock, in order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

__all__ = ["Outbox"]

log = logging.getLogger(__name__)

_SEND_ERRORS = (WebSocketDisconnect, OSError, RuntimeError)
"""What a send to a socket the client has left raises (uvicorn, Litestar, the ASGI server)."""


class Outbox:
    """Serialises sends on one socket; after the client is gone, sends return False."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
        self.open = True
        self._lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send a JSON text frame; False when the socket is closed."""
        return await self._send(msgspec.json.encode(frame).decode(), "text")

    async def send_bytes(self, data: bytes) -> bool:
        """Send a binary frame; False when the socket is closed."""
        return await self._send(data, "binary")

    async def _send(self, data: str | bytes, mode: Any) -> bool:
        async with self._lock:
            if not self.open:
                return False
            try:
                await self.socket.send_data(data, mode=mode)
            except _SEND_ERRORS:
                self.open = False
                return False
        return True

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the socket (once)."""
        async with self._lock:
            if not self.open:
                return
            self.open = False
            try:
                await self.socket.close(code=code, reason=reason)
            except _SEND_ERRORS:
                log.debug("socket already closed")
