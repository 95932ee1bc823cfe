"""The caller's own data: ``DELETE /api/v1/users/me/memory`` forgets what the agent remembers.

Mounted only while the ``memory`` plugin is loaded (``web/plugin.py``); the memory is the user's
record in the store, so nothing here imports the plugin."""

from __future__ import annotations

from typing import Any

from litestar import delete
from litestar.di import NamedDependency

from parley.adapters.web.identity import Caller
from parley.core import store
from parley.openapi import AUTH, errors

__all__ = ["HANDLERS", "erase_my_memory"]


@delete(
    "/api/v1/users/me/memory",
    status_code=200,
    summary="Erase my memory",
    responses=errors(*AUTH),
)
async def erase_my_memory(caller: NamedDependency[Caller]) -> dict[str, Any]:
    """Forget what the agent remembers about the caller (the ``memory`` plugin's summary)."""
    await store.set_user_memory(caller.user_id, None)
    return {"erased": True}


HANDLERS = [erase_my_memory]
