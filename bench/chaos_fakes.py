"""Fake platforms for the chaos harness, on one aiohttp server.

An OpenAI-compatible LLM that answers ``re: <last user text>`` in a few streamed pieces, the
WhatsApp Graph API (messages) and the Telegram Bot API (webhook mode: getMe, setWebhook,
sendMessage...). Every reply they receive is recorded with its time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PHONE_ID, WA_TOKEN, WA_SECRET = "1098765432", "chaos-token", "chaos-app-secret"
TG_TOKEN, TG_SECRET = "123456:CHAOS-token", "chaos_secret"
PIECES = 4


def expected(text: str) -> str:
    """The fake LLM's answer to ``text``."""
    return f"re: {text}"


@dataclass
class Fakes:
    """The fake LLM, Graph API and Bot API; ``replies[(platform, user)]`` = [(time, text)]."""

    piece_delay: float = 0.08
    base: str = ""
    replies: dict[tuple[str, str], list[tuple[float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    llm_calls: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._llm)
        app.router.add_post("/v21.0/{phone}/messages", self._graph)
        app.router.add_post("/bot{token}/{method}", self._bot)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _llm(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.llm_calls += 1
        users = [m for m in body["messages"] if m.get("role") == "user"]
        text = expected(str(users[-1]["content"]) if users else "")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        size = -(-len(text) // PIECES)
        for start in range(0, len(text), size):
            await asyncio.sleep(self.piece_delay)
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": text[start : start + size]},
                        "finish_reason": None,
                    }
                ],
            }
            try:
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            except ConnectionError:  # the process asking was killed
                return response
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _graph(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("status") == "read":
            return web.json_response({"success": True})
        self.replies[("whatsapp", str(body["to"]))].append((time.monotonic(), body["text"]["body"]))
        wamid = f"wamid.out.{next(self._ids)}"
        return web.json_response({"messaging_product": "whatsapp", "messages": [{"id": wamid}]})

    async def _bot(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(await request.post())
        if not params and request.can_read_body:
            try:
                params = await request.json()
            except ValueError:
                params = {}
        if method == "getMe":
            result: Any = {
                "id": 123456,
                "is_bot": True,
                "first_name": "Chaos",
                "username": "chaos_bot",
            }
        elif method in ("sendMessage", "editMessageText"):
            chat_id = str(params.get("chat_id"))
            if method == "sendMessage":
                self.replies[("telegram", chat_id)].append((time.monotonic(), str(params["text"])))
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": "private"},
                "text": params.get("text", ""),
            }
        else:
            result = True
        return web.json_response({"ok": True, "result": result})
