"""The LLM messages built from stored records never share the records' own dicts: records may be
shared (the history window kept in memory) and a ``before_llm`` plugin may edit in place."""

from __future__ import annotations

from datetime import UTC, datetime

from parley.core.config import Persona
from parley.core.context import build_messages
from parley.core.store.records import MessageRecord


def _record(id: str, role: str, content: str, metadata: dict) -> MessageRecord:
    return MessageRecord(
        id=id,
        conversation_id="c",
        role=role,
        content=content,
        status="complete",
        created_at=datetime.now(UTC),
        metadata=metadata,
    )


def test_editing_the_messages_leaves_the_records_alone() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "clock", "arguments": "{}"}}
    reply = _record(
        "r1", "assistant", "It is noon.", {"tool_steps": [{"text": "", "calls": [call]}]}
    )
    result = _record("t1", "tool", "12:00", {"reply_id": "r1", "tool_call_id": "c1"})
    messages = build_messages(Persona(id="alex", name="Alex"), "en", [reply, result])
    (asking,) = [m for m in messages if m.get("tool_calls")]
    asking["tool_calls"][0]["function"]["arguments"] = '{"edited": true}'
    asking["tool_calls"].append({"id": "c2"})
    assert reply.metadata["tool_steps"][0]["calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "clock", "arguments": "{}"}}
    ]
