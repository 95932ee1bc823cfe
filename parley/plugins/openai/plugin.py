"""Built-in plugin: registers the ``openai`` LLM provider (any OpenAI-compatible endpoint).

The SDK is imported only when the provider is built, so loading plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import LLMProvider


def make_openai_llm(settings: Settings) -> LLMProvider:
    """Build the openai provider from ``settings.llm`` (imports the SDK)."""
    from parley.plugins.openai.llm import OpenAILLM

    return OpenAILLM(settings.llm)


@hookimpl
def register_llm_providers(register: Callable[..., None]) -> None:
    """Register ``openai``."""
    register("openai", make_openai_llm)
