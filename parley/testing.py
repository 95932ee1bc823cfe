"""Fakes and helpers for tests and benchmarks, by kind; import them from here.

- :mod:`parley.testing_providers`: providers playing scripted parts (LLM, STT, live STT, TTS);
- :mod:`parley.fake_services`: what cloud services send (OpenAI's SSE bodies, Deepgram's
  transcript) and a local OpenAI-compatible server playing it;
- :mod:`parley.testing_servers`: Parley served in this event loop or as ``parley`` child
  processes, free ports, a clean environment;
- here: a runtime with your plugins for a plugin's own tests (:func:`running_parley`),
  collecting a turn's events, installing a plugin distribution into a folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.fake_services import openai_chunk, openai_sse, openai_text, openai_tool_calls
from parley.testing_providers import (
    FakeLiveSession,
    FakeLiveSTT,
    FakeSTT,
    ScriptedLLM,
    Step,
    ToneTTS,
    tool_call,
)
from parley.testing_servers import (
    PARLEY,
    ParleyProcess,
    clean_environ,
    free_port,
    run_parley,
    running_server,
)

if TYPE_CHECKING:
    from parley.core.adapter_context import AdapterContext
    from parley.core.config import Settings

__all__ = [
    "PARLEY",
    "FakeLiveSTT",
    "FakeLiveSession",
    "FakeSTT",
    "ParleyProcess",
    "ScriptedLLM",
    "Step",
    "ToneTTS",
    "clean_environ",
    "collect",
    "free_port",
    "install_distribution",
    "openai_chunk",
    "openai_sse",
    "openai_text",
    "openai_tool_calls",
    "run_parley",
    "running_parley",
    "running_server",
    "tool_call",
]


async def collect(events: AsyncIterable[Any]) -> list[Any]:
    """Every event of a turn, in order."""
    return [event async for event in events]


@asynccontextmanager
async def running_parley(
    settings: Settings | dict[str, Any],
    *,
    plugins: Iterable[tuple[str, object]] = (),
    adapters: bool = False,
) -> AsyncIterator[AdapterContext]:
    """Parley started in this event loop with the built-in plugins and ``plugins`` (``(name,
    plugin)`` pairs; entry points are not loaded), stopped at the end.

    ``settings`` is a :class:`parley.Settings` or a dict of settings sections (validated as
    ``settings.toml`` is). It yields the :class:`parley.AdapterContext`: ``engine``,
    ``conversations``, ``store`` and the rest of what a plugin or adapter gets. Adapters are
    built but not started unless ``adapters`` is true.
    """
    from parley.core.loading import settings_from_dict
    from parley.core.plugins import make_plugin_manager
    from parley.core.runtime import Runtime

    if isinstance(settings, dict):
        settings = settings_from_dict(settings)
    pm = make_plugin_manager(settings.plugins.disable, entry_points=False, extra=plugins)
    runtime = Runtime(settings, pm)
    try:
        await runtime.start(adapters=adapters)
        yield runtime.adapter_context
    finally:
        await runtime.stop()


def install_distribution(source: Any, target: Any) -> None:
    """Install the distribution at ``source`` into the folder ``target`` (for ``PYTHONPATH``).

    It is built from a copy, so the build leaves nothing (``build/``, ``*.egg-info``) in the
    source tree. Entry points of the installed distribution are then found through ``target``.
    """
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / Path(source).name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(copy)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
