"""Processes of a benchmark run: the fakes, the baseline and ``parley serve``, each measurable.

Every server runs as its own process so its CPU time (the kernel's clock of the process) and
memory (psutil) are read per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from fakes import Pace  # bench/ is on sys.path (run as a script, or by the smoke test)

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
PARLEY = str(Path(PYTHON).with_name("parley"))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _libc() -> ctypes.CDLL | None:
    """The C library, with the two clock calls typed; None where it lacks them."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        clock_id, gettime = libc.clock_getcpuclockid, libc.clock_gettime
    except (OSError, AttributeError):
        return None
    clock_id.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    gettime.argtypes = [ctypes.c_int, ctypes.POINTER(_Timespec)]
    return libc


_LIBC = _libc()


def cpu_seconds(pid: int) -> float | None:
    """CPU time of process ``pid``, all its threads, as the kernel counts it (nanoseconds:
    POSIX ``clock_getcpuclockid``); None where that clock cannot be read."""
    if _LIBC is None:
        return None
    clock, now = ctypes.c_int(), _Timespec()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return None
    if _LIBC.clock_gettime(clock, ctypes.byref(now)) != 0:
        return None
    return now.tv_sec + now.tv_nsec / 1e9


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One server process: its name, port and psutil handle."""

    name: str
    port: int
    popen: subprocess.Popen
    log: Path
    process: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.process = psutil.Process(self.popen.pid)

    @property
    def ws_url(self) -> str:
        """The chat WebSocket's URL (without the device id)."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def cpu(self) -> float:
        """CPU seconds (user + system) used so far: the kernel's count in nanoseconds, where
        psutil reads 10 ms ticks (its figure where that clock cannot be read)."""
        seconds = cpu_seconds(self.popen.pid)
        if seconds is not None:
            return seconds
        times = self.process.cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        """Resident memory in bytes."""
        return self.process.memory_info().rss

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s); only this process, by its pid."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(
    name: str,
    argv: list[str],
    port: int,
    folder: Path,
    env: dict | None = None,
    *,
    wait: bool = True,
) -> Server:
    """Start ``argv``; with ``wait``, wait (up to 60 s) until ``port`` accepts connections.

    ``wait=False`` returns at once, so several servers can start together: then call
    :func:`listening` before using them."""
    log = folder / f"{name}-{port}.log"
    popen = subprocess.Popen(
        argv,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=folder,
    )
    server = Server(name, port, popen, log)
    if wait:
        listening([server])
    return server


def listening(servers: list[Server], limit: float = 60) -> None:
    """Wait until every server accepts connections (within ``limit`` seconds of now)."""
    deadline = time.monotonic() + limit
    for server in servers:
        popen, log = server.popen, server.log
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"{server.name} exited at start:\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    popen.kill()
                    raise RuntimeError(
                        f"{server.name} did not listen on {server.port} within {limit:.0f} s:\n"
                        f"{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)


def start_fakes(pace: Pace, folder: Path, *, wait: bool = True) -> Server:
    """The fake LLM + TTS server."""
    port = free_port()
    argv = [PYTHON, str(BENCH / "fakes.py"), "--port", str(port)]
    for key, value in vars(pace).items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return start("fakes", argv, port, folder, wait=wait)


def probed(commits: Path | None) -> dict:
    """The environment that loads the probe (``bench/probe``: commits, LLM requests) into a
    server, writing its moments to ``commits``; nothing without it."""
    if commits is None:
        return {}
    path = os.pathsep.join(p for p in (str(BENCH / "probe"), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "PARLEY_BENCH_COMMITS": str(commits)}


def start_baseline(
    fakes: Server, folder: Path, db: str, *, wait: bool = True, commits: Path | None = None
) -> Server:
    """The bare baseline endpoint on the fakes (``commits``: see :func:`probed`)."""
    port = free_port()
    argv = [PYTHON, str(BENCH / "baseline.py"), "--port", str(port), "--db", db]
    argv += ["--llm", f"http://127.0.0.1:{fakes.port}/v1"]
    return start("baseline", argv, port, folder, env=probed(commits), wait=wait)


def parley_settings(folder: Path, fakes: Server, db: str, *, speech: bool, redis: str = "") -> Path:
    """A settings folder for ``parley serve`` on the fakes: one persona, no greeting."""
    settings = folder / "settings"
    settings.mkdir(exist_ok=True)
    fake = f"http://127.0.0.1:{fakes.port}"
    tts = "elevenlabs" if speech else ""
    (settings / "settings.toml").write_text(
        textwrap.dedent(
            f"""
            [database]
            url = "{db}"
            [llm]
            provider = "openai"
            base_url = "{fake}/v1"
            api_key = "bench"
            model = "fake"
            max_retries = 0
            [conversation]
            default_template = "bench"
            history_window = 20
            [stt]
            provider = ""
            [tts]
            provider = "{tts}"
            base_url = "{fake}"
            api_key = "bench"
            output_format = "pcm_16000"
            max_retries = 0
            [web]
            rate_limit = 0
            [redis]
            url = "{redis}"
            """
        )
    )
    (settings / "personas.toml").write_text(
        '[personas.bench]\nname = "Bench"\nsystem_prompt = "Be helpful."\n'
    )
    (settings / "templates.toml").write_text('[templates.bench]\npersonas = ["bench"]\n')
    (settings / "languages.toml").write_text('[languages.en]\ntermination_phrases = ["bye"]\n')
    return settings


def start_parley(
    fakes: Server,
    folder: Path,
    db: str,
    *,
    speech: bool = False,
    redis: str = "",
    wait: bool = True,
    commits: Path | None = None,
) -> Server:
    """``parley serve`` on the fakes (a settings folder of its own under ``folder``;
    ``commits``: see :func:`probed`)."""
    port = free_port()
    home = folder / f"parley-{port}"
    home.mkdir()
    settings = parley_settings(home, fakes, db, speech=speech, redis=redis)
    argv = [PARLEY, "serve", "--port", str(port), "--settings", str(settings)]
    env = {"PARLEY_SETTINGS_DIR": str(settings), **probed(commits)}
    return start("parley", argv, port, home, env=env, wait=wait)


def optional(script: Path, args: list[str], limit: float) -> dict:
    """Run another branch's benchmark script (local voice, chaos) if it exists; its stdout.

    The script runs in a process group of its own: past ``limit`` seconds it is interrupted
    (SIGINT: its clean-up runs, its servers stop, its database schema goes), and whatever of
    the group is left 20 s later is killed, so nothing it started outlives it. Blocking: call
    it through ``asyncio.to_thread``."""
    if not script.exists():
        return {"available": False}
    with subprocess.Popen(
        [PYTHON, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _signal_group(popen.pid, signal.SIGINT)
            try:
                popen.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(popen.pid, signal.SIGKILL)
            popen.communicate()
            return {"available": True, "ok": False, "output": f"timed out after {limit:.0f} s"}
        finally:
            _signal_group(popen.pid, signal.SIGKILL)  # anything it started and left behind
    ok = popen.returncode == 0
    output = (stdout if ok else stdout + stderr).strip()  # logs only on failure
    return {"available": True, "ok": ok, "output": output[-6000:]}


def _signal_group(group: int, signum: int) -> None:
    """Send ``signum`` to the process group this harness started (gone already: nothing)."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass
