"""A long-lived piper child process: one line of text in, one WAV file out.

piper-tts is GPL-3.0, so Parley never imports it: it runs piper's own command line
(``python -m piper --output-dir``) as a child process and speaks to it over pipes. Each line
on its stdin becomes one WAV file, announced by a ``Wrote <path>`` line on its stderr; answers
come in the order of the lines, so a queue of waiting futures pairs them. Thread-based, so
one process serves every event loop (tests share it).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import subprocess
import tempfile
import threading
import wave
from pathlib import Path

from parley.audio import DecodedAudio
from parley.plugins.local.models import PiperVoice

__all__ = ["PiperProcess", "read_wav"]

log = logging.getLogger(__name__)

WROTE = "Wrote "


def read_wav(path: Path) -> DecodedAudio:
    """Mono PCM16 samples of a WAV file written by piper or espeak-ng."""
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        return DecodedAudio(frames, wav.getframerate())


class PiperProcess:
    """One piper child process for one voice, started on first use, restarted if it died."""

    def __init__(self, command: list[str], voice: PiperVoice, *, length_scale: float = 1.0) -> None:
        self.command = command
        self.voice = voice
        self.length_scale = length_scale
        self._process: subprocess.Popen[str] | None = None
        self._waiting: collections.deque[concurrent.futures.Future[Path]] = collections.deque()
        self._lock = threading.Lock()
        self._folder = tempfile.TemporaryDirectory(prefix="parley-piper-")

    @property
    def running(self) -> bool:
        """True while the child process runs."""
        return self._process is not None and self._process.poll() is None

    def _start(self) -> subprocess.Popen[str]:
        args = [
            *self.command,
            "--model",
            str(self.voice.model),
            "--config",
            str(self.voice.config),
            "--output-dir",
            self._folder.name,
            "--length-scale",
            str(self.length_scale),
        ]
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._waiting = collections.deque()  # a new process answers only its own lines
        reader = threading.Thread(
            target=self._read, args=(process, self._waiting), name="piper-reader", daemon=True
        )
        reader.start()
        return process

    def _read(
        self,
        process: subprocess.Popen[str],
        queue: collections.deque[concurrent.futures.Future[Path]],
    ) -> None:
        assert process.stderr is not None
        tail: collections.deque[str] = collections.deque(maxlen=5)
        for line in process.stderr:
            _, found, path = line.partition(WROTE)
            if not found:
                tail.append(line.strip())
                continue
            with self._lock:
                future = queue.popleft() if queue else None
            wav = Path(path.strip())
            if future is None or not future.set_running_or_notify_cancel():
                wav.unlink(missing_ok=True)  # the caller gave up (barge-in)
                continue
            future.set_result(wav)
        with self._lock:
            waiting = list(queue)
            queue.clear()
        message = f"piper exited ({process.wait()}): {' | '.join(tail)}"
        for future in waiting:
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError(message))
        if waiting:
            log.warning("%s", message)

    def submit(self, text: str) -> concurrent.futures.Future[Path]:
        """Queue one line of text; the future gets the WAV file's path."""
        line = " ".join(text.split())
        future: concurrent.futures.Future[Path] = concurrent.futures.Future()
        with self._lock:
            if not self.running:
                self._process = self._start()
            assert self._process is not None and self._process.stdin is not None
            self._waiting.append(future)
            try:
                self._process.stdin.write(line + "\n")
                self._process.stdin.flush()
            except OSError as exc:
                self._waiting.remove(future)
                raise RuntimeError(f"piper is not running: {exc}") from exc
        return future

    def synthesize(self, text: str, timeout: float = 60.0) -> DecodedAudio:
        """Speak one line and wait for its samples (blocks)."""
        path = self.submit(text).result(timeout)
        try:
            return read_wav(path)
        finally:
            path.unlink(missing_ok=True)

    def stop(self) -> None:
        """End the child process and remove its folder."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._folder.cleanup()
