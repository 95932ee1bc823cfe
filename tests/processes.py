"""``parley serve`` as a subprocess for tests: started on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.test_cli import PARLEY, ROOT, _free_port


@dataclass
class Served:
    """A running server: its base URL and, once stopped, what it wrote."""

    base: str
    process: subprocess.Popen[str]
    out: str = ""
    err: str = ""

    def chat(self, text: str, device: str) -> httpx.Response:
        """POST /chat/ as ``device``."""
        return httpx.post(
            f"{self.base}/chat/",
            json={"content": text},
            headers={"X-Device-ID": device},
            timeout=10,
        )


@contextmanager
def serve(folder: Path, **env: str) -> Iterator[Served]:
    """Serve the settings ``folder`` with a clean environment plus ``env``; wait for /health."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI"))}
    environ.update(env)
    port = _free_port()
    process = subprocess.Popen(
        [*PARLEY, "serve", "--settings", str(folder), "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        for _ in range(300):
            try:
                httpx.get(f"{served.base}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        served.out, served.err = process.communicate(timeout=20)
