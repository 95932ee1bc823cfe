"""Parley: a framework for conversational agents on chat platforms.

The names a plugin or an adapter needs are importable from here (docs/plugins.md), and the
commands a live conversation takes from :mod:`parley.commands`; everything else is internal and
may move. They are loaded on first use, so ``import parley`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from parley.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from parley.core.adapter import Adapter
    from parley.core.adapter_context import AdapterContext
    from parley.core.config import (
        InvalidSetting,
        ModelSettings,
        Persona,
        Settings,
        SettingsError,
        Template,
    )
    from parley.core.engine_types import EngineError, Opened
    from parley.core.event_codec import Envelope
    from parley.core.events import (
        AudioChunk,
        AudioCompleted,
        ConversationEnded,
        ErrorEvent,
        Event,
        Interrupted,
        InterruptRequested,
        MessageCompleted,
        MessageStarted,
        Sentence,
        TextDelta,
        Transcript,
        TurnCompleted,
        TurnStarted,
    )
    from parley.core.inbound import Inbound
    from parley.core.leases import Lease, make_lease
    from parley.core.listening import Heard, Utterances
    from parley.core.loading import load_settings
    from parley.core.plugin_context import PluginContext
    from parley.core.providers import (
        LiveResult,
        LiveSession,
        LiveSTTProvider,
        LiveTranscript,
        LLMChunk,
        LLMProvider,
        LLMRequest,
        MissingDependency,
        ProviderAuthError,
        ProviderError,
        ProviderRateLimited,
        ProviderStalled,
        ProviderTimeout,
        ProviderUnavailable,
        SpeechStarted,
        STTProvider,
        ToolCallDelta,
        Transcription,
        TTSProvider,
        Usage,
        UtteranceEnd,
    )
    from parley.core.speech import SpeechOptions
    from parley.core.store.records import ConversationRecord, MessageRecord, UserRecord
    from parley.core.tools import Tool

__all__ = [
    "Adapter",
    "AdapterContext",
    "AudioChunk",
    "AudioCompleted",
    "ConversationEnded",
    "ConversationRecord",
    "EngineError",
    "Envelope",
    "ErrorEvent",
    "Event",
    "Heard",
    "Inbound",
    "InterruptRequested",
    "Interrupted",
    "InvalidSetting",
    "LLMChunk",
    "LLMProvider",
    "LLMRequest",
    "Lease",
    "LiveResult",
    "LiveSTTProvider",
    "LiveSession",
    "LiveTranscript",
    "MessageCompleted",
    "MessageRecord",
    "MessageStarted",
    "MissingDependency",
    "ModelSettings",
    "Opened",
    "Persona",
    "PluginContext",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderStalled",
    "ProviderTimeout",
    "ProviderUnavailable",
    "STTProvider",
    "Sentence",
    "Settings",
    "SettingsError",
    "SpeechOptions",
    "SpeechStarted",
    "TTSProvider",
    "Template",
    "TextDelta",
    "Tool",
    "ToolCallDelta",
    "Transcript",
    "Transcription",
    "TurnCompleted",
    "TurnStarted",
    "Usage",
    "UserRecord",
    "UtteranceEnd",
    "Utterances",
    "hookimpl",
    "load_settings",
    "make_lease",
]

_HOMES = {
    "Adapter": "parley.core.adapter",
    "AdapterContext": "parley.core.adapter_context",
    "AudioChunk": "parley.core.events",
    "AudioCompleted": "parley.core.events",
    "ConversationEnded": "parley.core.events",
    "ConversationRecord": "parley.core.store.records",
    "EngineError": "parley.core.engine_types",
    "Envelope": "parley.core.event_codec",
    "ErrorEvent": "parley.core.events",
    "Event": "parley.core.events",
    "Heard": "parley.core.listening",
    "Inbound": "parley.core.inbound",
    "InterruptRequested": "parley.core.events",
    "Interrupted": "parley.core.events",
    "InvalidSetting": "parley.core.config",
    "LLMChunk": "parley.core.providers",
    "LLMProvider": "parley.core.providers",
    "LLMRequest": "parley.core.providers",
    "Lease": "parley.core.leases",
    "LiveResult": "parley.core.providers",
    "LiveSTTProvider": "parley.core.providers",
    "LiveSession": "parley.core.providers",
    "LiveTranscript": "parley.core.providers",
    "MessageCompleted": "parley.core.events",
    "MessageRecord": "parley.core.store.records",
    "MessageStarted": "parley.core.events",
    "MissingDependency": "parley.core.providers",
    "ModelSettings": "parley.core.config",
    "Opened": "parley.core.engine_types",
    "Persona": "parley.core.config",
    "PluginContext": "parley.core.plugin_context",
    "ProviderAuthError": "parley.core.providers",
    "ProviderError": "parley.core.providers",
    "ProviderRateLimited": "parley.core.providers",
    "ProviderStalled": "parley.core.providers",
    "ProviderTimeout": "parley.core.providers",
    "ProviderUnavailable": "parley.core.providers",
    "STTProvider": "parley.core.providers",
    "Sentence": "parley.core.events",
    "Settings": "parley.core.config",
    "SettingsError": "parley.core.config",
    "SpeechOptions": "parley.core.speech",
    "SpeechStarted": "parley.core.providers",
    "TTSProvider": "parley.core.providers",
    "Template": "parley.core.config",
    "TextDelta": "parley.core.events",
    "Tool": "parley.core.tools",
    "ToolCallDelta": "parley.core.providers",
    "Transcript": "parley.core.events",
    "Transcription": "parley.core.providers",
    "TurnCompleted": "parley.core.events",
    "TurnStarted": "parley.core.events",
    "Usage": "parley.core.providers",
    "UserRecord": "parley.core.store.records",
    "UtteranceEnd": "parley.core.providers",
    "Utterances": "parley.core.listening",
    "load_settings": "parley.core.loading",
    "make_lease": "parley.core.leases",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'parley' has no attribute {name!r}")
    return getattr(import_module(home), name)
