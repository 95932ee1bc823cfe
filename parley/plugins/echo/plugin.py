"""Built-in plugin: registers the offline ``echo`` LLM provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.config import Settings
    from parley.core.providers import LLMProvider


def make_echo_llm(settings: Settings) -> LLMProvider:
    """Build the echo provider from settings."""
    from parley.plugins.echo.llm import EchoLLM

    return EchoLLM(settings.llm)


@hookimpl
def register_llm_providers(register: Callable[..., None]) -> None:
    """Register ``echo``."""
    register("echo", make_echo_llm)
