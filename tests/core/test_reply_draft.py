"""A reply's row is inserted in the background once its LLM request has left (parley/core/reply.py):
a caller cancelled while it waits for that insert (a barge-in, a closed socket) never cancels the
insert, so the interrupted reply is still stored."""

from __future__ import annotations

import asyncio

from parley.core import store
from parley.core.config import Persona
from parley.core.reply import _Draft


async def test_a_cancelled_wait_does_not_cancel_the_insert(tmp_path) -> None:
    await store.connect(f"sqlite://{tmp_path / 'parley.db'}")
    try:
        user = await store.get_or_create_user("web", "draft")
        conversation = await store.start_conversation(user.id, "web", "solo", "en")
        draft = _Draft(conversation, Persona(id="alex", name="Alex"))
        waiting = asyncio.create_task(draft.stored())
        await asyncio.sleep(0)  # the wait has begun, the insert is under way
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        stored = await draft.write(content="Hel", status="interrupted")
        assert (stored.id, stored.status) == (draft.id, "interrupted")
        again = await store.get_message(draft.id)
        assert again is not None and (again.content, again.status) == ("Hel", "interrupted")
    finally:
        await store.close()
