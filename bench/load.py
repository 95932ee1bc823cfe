"""The benchmark client: conversations over ``/ws``, as a browser widget would hold them.

One client drives Parley and the baseline alike (the baseline speaks the frames read here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field

import httpx
from harness import Server
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

QUESTION = "plan my morning"
_devices = itertools.count()


def device_id(prefix: str = "bench") -> str:
    """A new device id (so a new user and conversation)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(_devices)}"


async def open_socket(url: str, device: str) -> ClientConnection:
    """Connect as ``device`` and wait for ``conversation_started``."""
    socket = await connect(
        f"{url}?device_id={device}", compression=None, max_size=None, open_timeout=60
    )
    while True:
        frame = json.loads(await socket.recv())
        if frame.get("type") == "conversation_started":
            return socket


@dataclass
class Turn:
    """One turn's timings, from sending the message (seconds)."""

    first_chunk: float
    done: float
    first_audio: float | None = None
    sent_at: float = 0.0
    """Wall clock when the message was sent (to line up with the fakes' timeline)."""


async def turn(socket: ClientConnection, text: str = QUESTION, *, audio: bool = False) -> Turn:
    """Send a user message and read until ``turn_complete`` (with ``audio``, also until the
    reply's ``audio_complete``)."""
    sent_at, started = time.time(), time.perf_counter()
    await socket.send(json.dumps({"type": "user_message", "data": {"text": text}}))
    first_chunk = first_audio = done = None
    audio_done = not audio
    while done is None or not audio_done:
        frame = await socket.recv()
        now = time.perf_counter() - started
        if isinstance(frame, bytes):
            first_audio = first_audio if first_audio is not None else now
            continue
        kind = json.loads(frame).get("type")
        if kind == "llm_chunk" and first_chunk is None:
            first_chunk = now
        elif kind == "audio_complete":
            audio_done = True
        elif kind == "error":
            raise RuntimeError(f"error frame: {frame}")
        elif kind == "turn_complete":
            done = now
    return Turn(first_chunk if first_chunk is not None else done, done, first_audio, sent_at)


async def enable_audio(socket: ClientConnection) -> None:
    """Ask for spoken replies (PCM 16 kHz) and wait for the answer."""
    data = {"enabled": True, "output_format": "pcm_16000"}
    await socket.send(json.dumps({"type": "audio_settings", "data": data}))
    while True:
        frame = json.loads(await socket.recv())
        if frame.get("type") == "audio_format":
            return
        if frame.get("type") == "error":
            raise RuntimeError(f"error frame: {frame}")


async def timeline(fakes: Server) -> dict[str, float]:
    """When each thing first happened at the fakes since the last call (wall clock)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{fakes.port}/events")
    first: dict[str, float] = {}
    for event in response.json():
        first.setdefault(event["kind"], event["t"])
    return first


@dataclass
class LoadResult:
    """Turns completed by N conversations in a time window, and the servers' CPU meanwhile."""

    conversations: int
    seconds: float
    turns: list[Turn] = field(default_factory=list)
    cycles: list[float] = field(default_factory=list)
    """Seconds from the message of each turn that completed in the window to its
    conversation's next message (the turn and the client's own step to the next)."""
    cpu: float = 0.0
    errors: list[str] = field(default_factory=list)
    """Conversations that ended in an error (an error frame, the socket closed by the server)."""

    @property
    def counted(self) -> float:
        """Turns completed in the window, per second."""
        return len(self.turns) / self.seconds

    @property
    def throughput(self) -> float:
        """Turns per second, from the conversations' cycles: every conversation always has a
        turn running (it sends its next message as soon as a turn completes), so N of them
        complete N / (mean cycle) turns a second (the response time law of a closed system).

        Counting the turns that complete in the window says the same on average but swings
        with the window's phase once a server is saturated: it then completes turns in waves
        about a round (N turns) apart, and a window one or two rounds long can hold a wave
        more or less (at 500 conversations, counts from 0.7x to 1.1x of this figure in
        repeats of one run; bench/notes.md)."""
        if not self.cycles:
            return self.counted
        return self.conversations / statistics.fmean(self.cycles)

    @property
    def cpu_per_turn(self) -> float | None:
        """Server CPU seconds per turn in the window (at :attr:`throughput`)."""
        turns = self.throughput * self.seconds
        return self.cpu / turns if turns else None


async def load(
    servers: list[Server],
    conversations: int,
    seconds: float,
    *,
    warmup: float = 1.0,
    devices: list[str] | None = None,
) -> LoadResult:
    """``conversations`` sockets (spread over ``servers``) sending turns back to back.

    Each conversation starts after a random pause (people do not all press enter at once) of up
    to 10 ms per conversation, 1 s at most. Steady state only: the window opens ``warmup``
    seconds after every conversation finished its first turn (at most 60 s after the start) and
    lasts ``seconds``, or as long as that first round took if longer (a saturated server
    completes turns in bursts: a window shorter than a turn can catch few or none; a cap of
    twice ``seconds`` was tried, and at 500 conversations it caught the baseline between two
    bursts, 70 turns where a full round holds 500); the turns that complete in it are kept with
    their conversations' cycles (see :attr:`LoadResult.throughput`), and the servers' CPU time
    in it. Turns still running when it closes are cut."""
    sockets = []
    for i in range(conversations):
        device = devices[i] if devices else device_id()
        sockets.append(open_socket(servers[i % len(servers)].ws_url, device))
    opened = await _gather_limited(sockets, 50)
    result = LoadResult(conversations, seconds)
    ready = asyncio.Event()
    started: set[int] = set()
    window: list[float] = []
    rng = random.Random(conversations)
    stagger = min(1.0, 0.01 * conversations)

    async def run(socket: ClientConnection) -> None:
        await asyncio.sleep(rng.uniform(0, stagger))
        in_window: Turn | None = None  # the last turn, if it completed in the window
        while True:
            if in_window is not None:  # its cycle ends as this conversation's next message leaves
                result.cycles.append(time.time() - in_window.sent_at)
            try:
                done = await turn(socket)
            except (ConnectionClosed, RuntimeError) as exc:  # counted, never hidden
                result.errors.append(f"{type(exc).__name__}: {exc}")
                started.add(id(socket))
                return
            in_window = None
            if window and window[0] <= time.perf_counter() <= window[1]:
                result.turns.append(done)
                in_window = done
            if id(socket) not in started:
                started.add(id(socket))
                if len(started) == len(opened):
                    ready.set()

    runs = [asyncio.ensure_future(run(socket)) for socket in opened]
    try:
        began = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await ready.wait()
        first_round = time.perf_counter() - began
        await asyncio.sleep(warmup)
        length = max(seconds, first_round)
        before = sum(server.cpu() for server in servers)
        window.extend([time.perf_counter(), time.perf_counter() + length])
        await asyncio.sleep(length)
        result.cpu = sum(server.cpu() for server in servers) - before
        result.seconds = length
    finally:
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await asyncio.gather(*(socket.close() for socket in opened), return_exceptions=True)
    return result


async def _gather_limited(coroutines: list, limit: int) -> list:
    """Await ``coroutines`` with at most ``limit`` running at once, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(coroutine):
        async with gate:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


@dataclass
class SocketCost:
    """What ``count`` idle sockets cost a server."""

    count: int
    rss_per_socket: float
    cpu_per_connection: float


async def idle_sockets(server: Server, count: int) -> SocketCost:
    """Open ``count`` sockets (new devices) and hold them idle; memory and CPU they cost."""
    warm = await _gather_limited([open_socket(server.ws_url, device_id()) for _ in range(20)], 20)
    await asyncio.sleep(0.5)
    rss, cpu = server.rss(), server.cpu()
    sockets = await _gather_limited(
        [open_socket(server.ws_url, device_id()) for _ in range(count)], 50
    )
    cpu = server.cpu() - cpu
    await asyncio.sleep(1.0)  # let the server settle (buffers freed, tasks parked)
    rss = server.rss() - rss
    await asyncio.gather(*(s.close() for s in [*warm, *sockets]), return_exceptions=True)
    return SocketCost(count, rss / count, cpu / count)
