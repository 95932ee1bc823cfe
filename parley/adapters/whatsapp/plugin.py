"""Built-in plugin ``whatsapp``: the WhatsApp Cloud API adapter, when ``whatsapp.enabled``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.adapters.whatsapp.settings import WhatsAppSettings
from parley.core.config import SettingsError
from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.adapter import Adapter
    from parley.core.adapter_context import AdapterContext

__all__ = ["make_adapter", "register_adapters"]


def make_adapter(context: AdapterContext) -> Adapter | None:
    """The adapter, or None when ``whatsapp.enabled`` is false. Bad settings raise SettingsError."""
    settings = context.section("whatsapp", WhatsAppSettings)
    if not settings.enabled:
        return None
    if settings.template and settings.template not in context.settings.templates:
        raise SettingsError(f"whatsapp.template: unknown template {settings.template!r}")
    from parley.adapters.whatsapp.adapter import WhatsAppAdapter

    return WhatsAppAdapter(context, settings)


@hookimpl
def register_adapters(register: Callable[..., None]) -> None:
    """Register ``whatsapp``."""
    register("whatsapp", make_adapter)
