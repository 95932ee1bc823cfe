"""The ``openai`` LLM provider: any OpenAI-compatible chat-completions endpoint, streamed.

Works with api.openai.com, DeepSeek, OpenRouter, vLLM, Ollama... through ``llm.base_url``.
The SDK retries 429, 5xx, connection errors and timeouts ``llm.max_retries`` times with backoff
(honouring ``retry-after-ms``/``retry-after``); what still fails becomes a
:class:`~parley.core.providers.ProviderError`. The runtime wraps the provider in a failover chain
whose watchdogs (``llm.first_token_timeout``, ``llm.stall_timeout``) bound the wait, retries
included, and which turns the SDK's retries off when a fallback follows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx2
import openai
from aiohttp.http_exceptions import HttpProcessingError
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from parley.core.providers import (
    LLMChunk,
    LLMRequest,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    import httpx

    from parley.core.config import LLMSettings

__all__ = ["OpenAILLM"]

NAME = "openai"
AUTH_HINT = "check llm.api_key or OPENAI_API_KEY"
NO_KEY_PLACEHOLDER = "not-needed"
"""Sent to a custom ``base_url`` when no key is set: local servers ignore it, the SDK needs one."""

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection (``llm.timeout`` bounds the rest of a request)."""

KEEPALIVE_SECONDS = 120.0
"""How long an idle connection waits for the next request (the SDK's default is 5 s, shorter than
the pause between two turns of a conversation: each turn would open a new TLS connection, two
more round trips before the request leaves). A connection the server closes meanwhile leaves the
pool when its close arrives, and the next request opens a new one."""
CONNECTION_LIMITS = httpx2.Limits(
    max_connections=openai.DEFAULT_CONNECTION_LIMITS.max_connections,
    keepalive_expiry=KEEPALIVE_SECONDS,
)
"""At most the SDK's 1000 connections, idle ones kept 120 s. aiohttp has no separate cap on idle
connections (the SDK's 100 would not apply): after a burst, the connections it opened wait for
the next one, each until its 120 s pass."""

_ARGUMENTS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")
_EXTRA_BODY = ("top_k", "min_p", "repetition_penalty")


class OpenAILLM:
    """Streams chat completions from an OpenAI-compatible server."""

    name = NAME

    def __init__(
        self, settings: LLMSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._http_client = http_client
        """Given (tests, proxies): the SDK client's; otherwise aiohttp under the SDK."""
        self._client: AsyncOpenAI | None = None

    @property
    def client(self) -> AsyncOpenAI:
        """The SDK client, built on first use (a missing key fails the first call, not start-up)."""
        if self._client is not None:
            return self._client
        api_key = self.settings.resolved_api_key()
        if not api_key:
            if not self.settings.base_url:
                raise ProviderAuthError(
                    "LLM API key missing: set llm.api_key or OPENAI_API_KEY", provider=NAME
                )
            api_key = NO_KEY_PLACEHOLDER
        self._client = AsyncOpenAI(
            base_url=self.settings.base_url or None,
            api_key=api_key,
            # A server that cannot be reached fails in seconds; a slow answer is bounded by
            # the failover chain's first-token and stall watchdogs (docs/operations.md).
            timeout=openai.Timeout(
                self.settings.timeout, connect=min(CONNECT_TIMEOUT, self.settings.timeout)
            ),
            max_retries=self.settings.max_retries,
            # aiohttp under the SDK (its documented ``DefaultAioHttpClient``; the SDK's requests,
            # retries and errors unchanged): a request costs about a quarter less CPU than through
            # httpx's own transport, leaves sooner after the stored user message, and one pool
            # holds hundreds of streams (httpcore went over every connection of its pool at each
            # request's start and end; docs/benchmarks.md).
            http_client=self._http_client or openai.DefaultAioHttpClient(limits=CONNECTION_LIMITS),
        )
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client and its connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def request_arguments(self, request: LLMRequest) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``request``: its JSON body,
        plus ``extra_body`` (fields OpenAI does not define) when set."""
        model = self.settings.defaults().merged(request.model)
        kwargs: dict[str, Any] = {
            "model": model.model or self.settings.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for key in _ARGUMENTS:
            value = getattr(model, key)
            if value is not None:
                kwargs[key] = value
        extra = {key: getattr(model, key) for key in _EXTRA_BODY if getattr(model, key) is not None}
        if extra:
            kwargs["extra_body"] = extra
        if request.tools:
            kwargs["tools"] = request.tools
            if request.tool_choice:
                kwargs["tool_choice"] = request.tool_choice
        return kwargs

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Yield text pieces, tool-call fragments, the finish reason and usage as they arrive."""
        client = self.client
        response = None
        try:
            # Not ``chat.completions.create``: it first walks the whole body against the SDK's
            # typed parameters (about 0.15 ms per message, 3 ms for a 20-message history, between
            # the stored user message and the request leaving; docs/benchmarks.md). The body is
            # plain JSON already, so it goes through the SDK's documented ``post`` as it is:
            # retries, auth, errors and the stream stay the SDK's.
            body = self.request_arguments(request)
            extra = body.pop("extra_body", {})
            response = await client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                stream=True,
                # Chunks as the JSON objects they are (``object``: the SDK hands the decoded
                # dict over) instead of a pydantic model built per chunk, which cost 3-5 ms of
                # CPU per 20-chunk reply under load (docs/benchmarks.md).
                stream_cls=openai.AsyncStream[object],
                options={"extra_json": extra},  # what create() does with extra_body
            )
            async for chunk in response:
                out = _convert(chunk)
                if out is not None:
                    yield out
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        except (aiohttp.ClientError, HttpProcessingError) as exc:
            # What the SDK's aiohttp transport passes through unmapped (and so the SDK neither
            # retries nor wraps): an answer that is not HTTP, headers it cannot parse, a broken
            # chunked body.
            raise ProviderUnavailable(
                f"LLM server sent a broken response: {exc}", provider=NAME
            ) from exc
        finally:
            # Also runs when the consumer stops early (aclose) or is cancelled.
            if response is not None:
                await response.close()

    def _error(self, exc: openai.OpenAIError) -> ProviderError:
        """Map an SDK error to a provider error; the API key never appears in the message."""
        error = _map_error(exc)
        key = self.settings.resolved_api_key()
        if key and key in error.message:
            error = type(error)(error.message.replace(key, "***"), provider=NAME)
        return error


def _convert(chunk: Any) -> LLMChunk | None:
    """One streamed chunk (the JSON object, as a dict) as an LLMChunk, or None when it carries
    nothing we use (role, reasoning). Fields of the wrong type count as absent."""
    if not isinstance(chunk, dict):
        return None
    text = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason = None
    choices = chunk.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict):
        delta = _mapping(choice.get("delta"))
        text = _text(delta.get("content"))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            tool_calls = tuple(
                _tool_call(call, position)
                for position, call in enumerate(calls)
                if isinstance(call, dict)
            )
        finish_reason = _text(choice.get("finish_reason")) or None
    usage = None
    counts = chunk.get("usage")
    if isinstance(counts, dict):
        usage = Usage(
            prompt_tokens=_count(counts.get("prompt_tokens")),
            completion_tokens=_count(counts.get("completion_tokens")),
        )
    if not (text or tool_calls or finish_reason or usage):
        return None
    return LLMChunk(text=text, tool_calls=tool_calls, finish_reason=finish_reason, usage=usage)


def _tool_call(call: dict[str, Any], position: int) -> ToolCallDelta:
    """One tool-call fragment of a chunk's delta."""
    function = _mapping(call.get("function"))
    index = call.get("index")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=_text(call.get("id")) or None,
        name=_text(function.get("name")) or None,
        arguments=_text(function.get("arguments")),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _status_of(exc: openai.APIError) -> int | None:
    """The HTTP status of an error, or the numeric ``code`` of an error sent inside the stream."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    code = exc.body.get("code") if isinstance(exc.body, dict) else None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def _server_message(exc: openai.APIError) -> str:
    """The server's own message when the body has one, else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def _connection_failed(exc: BaseException) -> BaseException | None:
    """The error under an SDK timeout when the connection failed (refused, no such host, TLS,
    closed by the server before it answered) rather than timed out: the SDK's aiohttp transport
    reports all of them as a connect timeout, the cause tells them apart. None for a timeout."""
    cause = exc.__cause__
    while cause is not None:
        failed = isinstance(cause, (OSError, aiohttp.ClientConnectionError))
        if failed and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__
    return None


def _map_error(exc: openai.OpenAIError) -> ProviderError:
    """The provider error for an SDK error (raised before or during the stream)."""
    if isinstance(exc, openai.APITimeoutError):
        failure = _connection_failed(exc)
        if failure is None:
            return ProviderTimeout("LLM request timed out", provider=NAME)
        return ProviderUnavailable(f"LLM server unreachable: {failure}", provider=NAME)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable(f"LLM server unreachable: {exc.message}", provider=NAME)
    if not isinstance(exc, openai.APIError):
        return ProviderError(f"LLM error: {exc}", provider=NAME)
    status = _status_of(exc)
    message = _server_message(exc)
    if status in (401, 403):
        message = f"LLM authentication failed ({status}): {AUTH_HINT}"
        return ProviderAuthError(message, provider=NAME)
    if status == 429:
        return ProviderRateLimited(f"LLM rate limited (429): {message}", provider=NAME)
    if status is not None and status >= 500:
        return ProviderUnavailable(f"LLM server error ({status}): {message}", provider=NAME)
    if status is not None:
        return ProviderError(f"LLM request failed ({status}): {message}", provider=NAME)
    return ProviderError(f"LLM stream failed: {message}", provider=NAME)
