"""Parley served for tests and benchmarks: in this event loop (:func:`running_server`), or as
real ``parley`` child processes (:class:`ParleyProcess`), each on a free loopback port.

Child processes get a clean environment (no ``PARLEY_*``, ``OPENAI*`` or ``TELEGRAM*`` variables
of the machine: only the settings folder and what the test passes), write their output to files
(a chatty server never blocks on a full pipe), and are stopped by their own pid or process group:
Ctrl-C (SIGINT) for a clean shutdown, SIGKILL for a crash.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "PARLEY",
    "ParleyProcess",
    "clean_environ",
    "free_port",
    "run_parley",
    "running_server",
]

PARLEY = [sys.executable, "-m", "parley.cli"]
"""The ``parley`` command, run with this interpreter."""

CLEAN_PREFIXES = ("PARLEY_", "OPENAI", "TELEGRAM")
"""Environment variables a child process does not inherit (they would change its settings)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def clean_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the variables that configure Parley, plus ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_PREFIXES)}
    environ.update(env or {})
    return environ


def run_parley(
    args: Sequence[str],
    *,
    stdin: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``parley <args>`` to its end in a clean environment (plus ``env``); its output."""
    return subprocess.run(
        [*PARLEY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environ(env),
    )


@asynccontextmanager
async def running_server(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yield its base URL.

    The app's lifespan (database, runtime, adapters) runs in the test's own loop, so the test body
    can query the store directly. Pass ``port`` to serve on a known one (a restart on the same
    address).
    """
    import uvicorn

    from parley.adapters.web.settings import uvicorn_options

    port = free_port(host) if port is None else port
    runtime = getattr(app.state, "runtime", None)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        **(uvicorn_options(runtime.settings) if runtime is not None else {}),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()
            raise RuntimeError("the test server did not start")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


class ParleyProcess:
    """``parley serve --settings <folder> --port <port>`` (plus ``args``) in a child process.

    ``with ParleyProcess(folder) as served:`` starts it, waits for ``GET /health`` to answer 200
    and stops it with Ctrl-C at the end (``served.out`` / ``served.err`` then hold what it
    wrote). It may be killed (:meth:`kill`) and started again on the same port. The process
    leads its own process group, so ``--workers`` children are stopped with it.
    """

    def __init__(
        self,
        settings: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        logs: Path | None = None,
        name: str = "parley",
    ) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        """The base URL."""
        self.argv = [*PARLEY, "serve", "--settings", str(settings), "--port", str(self.port)]
        self.argv += args
        self.env = clean_environ(env)
        self._own_logs = logs is None
        self.logs = logs if logs is not None else Path(tempfile.mkdtemp(prefix="parley-serve-"))
        """Where its output goes (a temporary folder, removed when it stops, unless given)."""
        self.out_log = self.logs / f"{name}.out.log"
        self.err_log = self.logs / f"{name}.err.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.out = self.err = ""
        """What it wrote to stdout / stderr (every run so far), read when it stops."""

    @property
    def pid(self) -> int:
        """The process id (of the last start)."""
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it; its output is appended to ``logs``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.out_log.open("ab") as out, self.err_log.open("ab") as err:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=err, start_new_session=True
            )

    def wait_healthy(self, within: float = 60.0) -> dict[str, Any]:
        """Wait until ``GET /health`` answers 200; its body. RuntimeError (with the end of the
        log) when the process exits first, TimeoutError when ``within`` seconds pass."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"parley serve exited:\n{self._tail()}")
            try:
                response = httpx.get(f"{self.url}/health", timeout=1)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"parley serve was not healthy within {within} s:\n{self._tail()}")

    async def healthy(self, within: float = 60.0) -> dict[str, Any]:
        """:meth:`wait_healthy` in a thread (the event loop goes on meanwhile)."""
        return await asyncio.to_thread(self.wait_healthy, within)

    def kill(self) -> None:
        """SIGKILL, by its pid (a crash: nothing is cleaned up), and reap it."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """Ctrl-C (SIGINT to its process group) and wait; SIGKILL after ``timeout`` seconds.
        Reads ``out`` and ``err``; returns the exit code (None when it never started)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.err_log.exists():  # else read by an earlier stop
            self.out = self.out_log.read_text(errors="replace")
            self.err = self.err_log.read_text(errors="replace")
        if self._own_logs:
            shutil.rmtree(self.logs, ignore_errors=True)
        return process.returncode

    def chat(self, text: str, device: str) -> httpx.Response:
        """``POST /chat/`` as ``device``."""
        return httpx.post(
            f"{self.url}/chat/", json={"content": text}, headers={"X-Device-ID": device}, timeout=10
        )

    def _tail(self) -> str:
        return self.err_log.read_text(errors="replace")[-3000:]

    def __enter__(self) -> ParleyProcess:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
