"""Built-in plugin: registers the ``deepgram`` STT provider (``stt.provider = "deepgram"``).

The SDK is imported only when the provider is built; without it the error names the extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.core.hookspecs import hookimpl
from parley.core.providers import MissingDependency, ProviderAuthError
from parley.plugins.deepgram.settings import DeepgramSettings

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.plugins.deepgram.stt import DeepgramSTT


def make_deepgram_stt(settings: Settings) -> DeepgramSTT:
    """Build the deepgram provider from the ``[stt]`` section (imports the SDK).

    Raises SettingsError for a bad value, ProviderAuthError when no key is set for the hosted
    API, MissingDependency when deepgram-sdk is not installed.
    """
    config = settings.section("stt", DeepgramSettings)
    if not config.resolved_api_key() and not config.base_url:
        raise ProviderAuthError(
            "no Deepgram API key: set stt.api_key (settings/.secrets.toml or PARLEY_STT__API_KEY) "
            "or DEEPGRAM_API_KEY",
            provider="deepgram",
        )
    try:
        from parley.plugins.deepgram.stt import DeepgramSTT
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("deepgram", "websockets"):
            raise
        raise MissingDependency("deepgram-sdk", "voice", provider="deepgram") from exc
    return DeepgramSTT(config)


@hookimpl
def register_stt_providers(register: Callable[..., None]) -> None:
    """Register ``deepgram``."""
    register("deepgram", make_deepgram_stt)
