"""Built-in plugin ``telegram``: registers the Telegram adapter when ``telegram.enabled``.

aiogram is imported only when the adapter is built, so Parley without Telegram never pays for it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.adapters.telegram.settings import load_telegram_settings
from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.adapter import Adapter
    from parley.core.adapter_context import AdapterContext

__all__ = ["make_telegram_adapter", "register_adapters"]


def make_telegram_adapter(context: AdapterContext) -> Adapter | None:
    """The adapter, or None when ``telegram.enabled`` is false. Bad settings raise SettingsError."""
    settings = load_telegram_settings(context.settings)
    if not settings.enabled:
        return None
    if importlib.util.find_spec("aiogram") is None:  # pragma: no cover - depends on the install
        raise ImportError("the Telegram adapter needs aiogram: pip install 'parley[telegram]'")
    from parley.adapters.telegram.adapter import TelegramAdapter

    return TelegramAdapter(context, settings)


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    """Register ``telegram``."""
    register("telegram", make_telegram_adapter)
