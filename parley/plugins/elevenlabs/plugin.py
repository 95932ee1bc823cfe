"""Built-in plugin: registers the ``elevenlabs`` TTS provider (``tts.provider = "elevenlabs"``).

The SDK is imported only when the provider is built; without it the error names the extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.core.hookspecs import hookimpl
from parley.core.providers import MissingDependency, ProviderAuthError
from parley.plugins.elevenlabs.settings import ElevenLabsSettings

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.plugins.elevenlabs.tts import ElevenLabsTTS


def make_elevenlabs_tts(settings: Settings) -> ElevenLabsTTS:
    """Build the elevenlabs provider from the ``[tts]`` section (imports the SDK).

    Raises SettingsError for a bad value, ProviderAuthError when no key is set for the hosted
    API, MissingDependency when the elevenlabs SDK is not installed.
    """
    config = settings.section("tts", ElevenLabsSettings)
    if not config.resolved_api_key() and not config.base_url:
        raise ProviderAuthError(
            "no ElevenLabs API key: set tts.api_key (settings/.secrets.toml or "
            "PARLEY_TTS__API_KEY) or ELEVENLABS_API_KEY",
            provider="elevenlabs",
        )
    try:
        from parley.plugins.elevenlabs.tts import ElevenLabsTTS
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "elevenlabs":
            raise
        raise MissingDependency("elevenlabs", "voice", provider="elevenlabs") from exc
    return ElevenLabsTTS(config)


@hookimpl
def register_tts_providers(register: Callable[..., None]) -> None:
    """Register ``elevenlabs``."""
    register("elevenlabs", make_elevenlabs_tts)
