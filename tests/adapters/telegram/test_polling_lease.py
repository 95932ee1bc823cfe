"""Polling under a lease: of several ``parley telegram`` processes on one bot, one polls at a
time; when it is killed, another takes over (real processes against the fake Bot API)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from parley.testing import PARLEY, clean_environ

SETTINGS = """
[database]
url = "sqlite://{db}"
[llm]
provider = "echo"
[telegram]
token = "{token}"
api_base = "{api}"
[conversation]
default_template = "solo"
[personas.alex]
name = "Alex"
system_prompt = "You are Alex."
[templates.solo]
personas = ["alex"]
"""


async def _start(folder: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *PARLEY,
        "telegram",
        "--settings",
        str(folder),
        env=clean_environ(),
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def _log_line(process: asyncio.subprocess.Process, text: str) -> None:
    """Read the process's log until a line contains ``text``."""
    async with asyncio.timeout(60):
        while line := await process.stderr.readline():
            if text in line.decode():
                return
    raise AssertionError(f"the process ended without logging {text!r}")


async def test_one_process_polls_and_another_takes_over_when_it_is_killed(tg, api, tmp_path):
    folder = tmp_path / "settings"
    folder.mkdir()
    token = tg.settings().raw["telegram"]["token"]
    (folder / "settings.toml").write_text(
        SETTINGS.format(db=tmp_path / "bot.sqlite3", token=token, api=api.base)
    )
    first = await _start(folder)
    second = None
    try:
        await _log_line(first, "Telegram polling started")
        second = await _start(folder)
        await _log_line(second, "stands by")
        for i in range(3):
            tg.push(tg.text(f"hello {i}"))
        await api.wait_sent("sendMessage", 3, within=30)

        first.send_signal(signal.SIGKILL)  # no clean-up: the kernel drops its lock
        await first.wait()
        await _log_line(second, "Telegram polling started")
        for i in range(3, 6):
            tg.push(tg.text(f"hello {i}"))
        await api.wait_sent("sendMessage", 6, within=30)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    assert api.conflicts == 0  # never two getUpdates at once
    assert len(api.sent("sendMessage")) == 6  # every update answered once
