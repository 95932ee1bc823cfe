"""The bare baseline: what a competent hand-written chat endpoint costs, without a framework.

A Litestar WebSocket, the openai SDK and Tortoise on SQLite, nothing else: on connect it finds or
creates the device's conversation; per user message it stores the message, reads the same
history window as Parley (20), streams the LLM's reply to the socket and stores the reply:
3 SQL statements and 2 commits a turn. On SQLite it runs with the durability ``parley serve``
has by default (WAL, ``synchronous=NORMAL``: no sync per commit), so neither system is timed
with a sync the other skips. It speaks the subset of Parley's ``/ws`` frames the
benchmark client reads (``conversation_started``, ``turn_started``, ``message_started``,
``llm_chunk``, ``message_complete``, ``turn_complete``), so one client drives both.

    python bench/baseline.py --port 9100 --db sqlite:///tmp/base.sqlite3 --llm http://127.0.0.1:9001/v1
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from baseline_models import BaseConversation, BaseMessage
from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from openai import AsyncOpenAI
from tortoise import Tortoise

HISTORY_WINDOW = 20


def make_app(db_url: str, llm_url: str) -> Litestar:
    """The baseline application."""
    llm = AsyncOpenAI(base_url=llm_url, api_key="bench", max_retries=0)

    @websocket("/ws")
    async def chat(socket: WebSocket, device_id: str) -> None:
        await socket.accept()
        conversation, _ = await BaseConversation.get_or_create(device=device_id)
        cid = str(conversation.id)
        await socket.send_json({"type": "conversation_started", "conversation_id": cid})
        try:
            while True:
                frame = await socket.receive_json()
                if frame.get("type") != "user_message":
                    continue
                text = frame["data"]["text"]
                user = await BaseMessage.create(
                    conversation_id=conversation.id, role="user", content=text
                )
                await socket.send_json(
                    {
                        "type": "turn_started",
                        "conversation_id": cid,
                        "user_message_id": str(user.id),
                    }
                )
                recent = (
                    await BaseMessage.filter(conversation_id=conversation.id)
                    .order_by("-created_at")
                    .limit(HISTORY_WINDOW)
                    .values_list("role", "content")
                )
                messages = [{"role": "system", "content": "Be helpful."}]
                messages += [{"role": r, "content": c} for r, c in reversed(recent)]
                reply_id = str(uuid.uuid4())
                await socket.send_json({"type": "message_started", "message_id": reply_id})
                parts = []
                stream = await llm.chat.completions.create(
                    model="fake",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        piece = chunk.choices[0].delta.content
                        parts.append(piece)
                        await socket.send_json(
                            {"type": "llm_chunk", "text": piece, "message_id": reply_id}
                        )
                reply = "".join(parts)
                await BaseMessage.create(
                    id=reply_id, conversation_id=conversation.id, role="assistant", content=reply
                )
                await socket.send_json(
                    {"type": "message_complete", "message_id": reply_id, "text": reply}
                )
                await socket.send_json({"type": "turn_complete", "conversation_id": cid})
        except WebSocketDisconnect:
            return

    async def start() -> None:
        await Tortoise.init(
            db_url=db_url, modules={"models": ["baseline_models"]}, _enable_global_fallback=True
        )
        await Tortoise.generate_schemas(safe=True)

    async def stop() -> None:
        await Tortoise.close_connections()

    return Litestar([chat], on_startup=[start], on_shutdown=[stop])


def main() -> None:
    """Serve the baseline until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="Tortoise URL, e.g. sqlite:///tmp/b.sqlite3")
    parser.add_argument("--llm", required=True, help="OpenAI-compatible base URL")
    args = parser.parse_args()
    db = args.db
    if db.startswith("sqlite://") and "synchronous=" not in db:
        db += ("&" if "?" in db else "?") + "synchronous=NORMAL"  # as `parley serve`
    uvicorn.run(
        make_app(db, args.llm),
        host="127.0.0.1",
        port=args.port,
        log_level="info",  # as `parley serve` (and uvicorn's default)
        ws="websockets-sansio",  # the WebSocket implementation `parley serve` uses
        ws_max_size=1 << 20,
    )


if __name__ == "__main__":
    main()
