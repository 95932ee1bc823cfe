"""The adapter protocol: what a platform plugin gives ``parley serve``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Adapter"]


@runtime_checkable
class Adapter(Protocol):
    """A platform adapter: routes to mount, and a background life (polling, workers...)."""

    name: str

    def route_handlers(self) -> list[Any]:
        """Litestar route handlers to mount (may be empty)."""
        ...

    async def start(self) -> None:
        """Start background work; called after the runtime started."""
        ...

    async def stop(self) -> None:
        """Stop background work; called before the runtime stops."""
        ...
