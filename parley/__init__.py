"""Parley: a framework for conversational agents on chat platforms.

The names a plugin needs are importable from here (docs/plugins.md); everything else is
internal and may move. They are loaded on first use, so ``import parley`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.adapter import Adapter
    from parley.core.adapter_context import AdapterContext
    from parley.core.config import InvalidSetting, Persona, Settings, SettingsError, Template
    from parley.core.events import Event
    from parley.core.inbound import Inbound
    from parley.core.plugin_context import PluginContext
    from parley.core.providers import (
        LLMChunk,
        LLMProvider,
        LLMRequest,
        MissingDependency,
        ProviderError,
        STTProvider,
        ToolCallDelta,
        Transcription,
        TTSProvider,
    )
    from parley.core.store.records import ConversationRecord, MessageRecord
    from parley.core.tools import Tool

__all__ = [
    "Adapter",
    "AdapterContext",
    "ConversationRecord",
    "Event",
    "Inbound",
    "InvalidSetting",
    "LLMChunk",
    "LLMProvider",
    "LLMRequest",
    "MessageRecord",
    "MissingDependency",
    "Persona",
    "PluginContext",
    "ProviderError",
    "STTProvider",
    "Settings",
    "SettingsError",
    "TTSProvider",
    "Template",
    "Tool",
    "ToolCallDelta",
    "Transcription",
    "hookimpl",
]

_HOMES = {
    "Adapter": "parley.core.adapter",
    "AdapterContext": "parley.core.adapter_context",
    "ConversationRecord": "parley.core.store.records",
    "Event": "parley.core.events",
    "Inbound": "parley.core.inbound",
    "InvalidSetting": "parley.core.config",
    "LLMChunk": "parley.core.providers",
    "LLMProvider": "parley.core.providers",
    "LLMRequest": "parley.core.providers",
    "MessageRecord": "parley.core.store.records",
    "MissingDependency": "parley.core.providers",
    "Persona": "parley.core.config",
    "PluginContext": "parley.core.plugin_context",
    "ProviderError": "parley.core.providers",
    "STTProvider": "parley.core.providers",
    "Settings": "parley.core.config",
    "SettingsError": "parley.core.config",
    "TTSProvider": "parley.core.providers",
    "Template": "parley.core.config",
    "Tool": "parley.core.tools",
    "ToolCallDelta": "parley.core.providers",
    "Transcription": "parley.core.providers",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'parley' has no attribute {name!r}")
    return getattr(import_module(home), name)
