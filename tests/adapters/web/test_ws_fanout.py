"""Fan-out across processes: two real ``parley serve`` processes on one PostgreSQL schema and one
Redis; a socket on one receives every frame of a turn that the other ran."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from parley.testing import ParleyProcess
from tests.test_serving import _folder


@contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """``parley serve`` as a subprocess; yields its base URL; its end must be clean."""
    with ParleyProcess(folder) as served:
        yield served.url
    assert served.process is not None and served.process.returncode == 0, served.err
    assert "Traceback" not in served.err, served.err


async def _recv(socket: ClientConnection) -> dict:
    while True:
        raw = await asyncio.wait_for(socket.recv(), 10)
        if isinstance(raw, str):
            return json.loads(raw)


async def _until(socket: ClientConnection, kind: str) -> list[dict]:
    frames = []
    while True:
        frames.append(await _recv(socket))
        if frames[-1]["type"] == kind:
            return frames


def _ws(base: str, device: str):
    return connect(base.replace("http://", "ws://") + f"/ws?device_id={device}", max_size=None)


async def test_a_socket_receives_the_turns_another_process_ran(tmp_path, pg_schema_url):
    device = f"fanout-{uuid.uuid4().hex[:8]}"
    folder = _folder(tmp_path, pg_schema_url)
    with _serve(folder) as one:
        # One process first: both would otherwise migrate the new schema at once.
        with _serve(folder) as two:
            async with _ws(one, device) as here:
                started = await _until(here, "message_complete")  # opened, greeted
                conversation_id = started[0]["conversation_id"]
                there = await _ws(two, device)
                resumed = await _recv(there)
                assert resumed["conversation_id"] == conversation_id and resumed["resumed"]

                # A REST message on process two: the socket on process one sees it all.
                async with httpx.AsyncClient(base_url=two) as http:
                    reply = await http.post(
                        "/chat/",
                        json={"content": "hello from REST"},
                        headers={"X-Device-ID": device},
                    )
                assert reply.status_code == 200, reply.text
                frames = await _until(here, "turn_complete")
                user, turn_started, *rest = frames
                assert user["type"] == "user_message"
                assert user["conversation_id"] == conversation_id
                assert user["message"]["content"] == "hello from REST"
                assert user["message"]["role"] == "user"
                assert turn_started == {
                    "type": "turn_started",
                    "conversation_id": conversation_id,
                    "user_message_id": user["message"]["id"],
                }
                complete = next(f for f in rest if f["type"] == "message_complete")
                assert complete["text"] == "You said: hello from REST."
                assert complete["message_id"] == reply.json()["message_id"]
                assert rest[-1]["turn_count"] == 1
                # The socket on process two saw it too (its own process ran the turn).
                there_frames = await _until(there, "turn_complete")
                assert [f["type"] for f in there_frames] == [f["type"] for f in frames]

                # A socket's own message: its frames as always; the other process's socket
                # gets the message first, then the same frames.
                await here.send(
                    json.dumps({"type": "user_message", "data": {"text": "and from here"}})
                )
                mine = await _until(here, "turn_complete")
                assert mine[0]["type"] == "turn_started"
                theirs = await _until(there, "turn_complete")
                assert theirs[0]["type"] == "user_message"
                assert theirs[0]["message"]["content"] == "and from here"
                assert theirs[1:] == mine
                await there.close()
