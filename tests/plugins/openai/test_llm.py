"""The openai provider, through respx at the HTTP layer (a legacy ``httpx.AsyncClient`` is passed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pluggy
import pytest
import respx

from parley.core import hookspecs
from parley.core.config import LLMSettings, ModelSettings, Settings
from parley.core.providers import (
    LLMChunk,
    LLMProvider,
    LLMRequest,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ToolCallDelta,
    Usage,
)
from parley.plugins.openai.llm import OpenAILLM

BASE_URL = "http://llm.test/v1"
URL = f"{BASE_URL}/chat/completions"
KEY = "sk-test-secret-123"
FAST_RETRY = {"retry-after-ms": "1"}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    """A chat.completion.chunk with one choice."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def usage_chunk(prompt: int = 7, completion: int = 3, choices: Any = ()) -> dict[str, Any]:
    """The last chunk of an ``include_usage`` stream."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": list(choices) if choices is not None else None,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    """An SSE body: each event as ``data: {json}``, raw strings as they are, then ``[DONE]``."""
    lines = [e if isinstance(e, str) else f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def sse_response(*events: dict[str, Any] | str) -> httpx.Response:
    """A 200 streaming response."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse(*events))


def text_stream(*pieces: str) -> httpx.Response:
    """A streamed completion of ``pieces`` then finish "stop" and usage."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events += [chunk({}, "stop"), usage_chunk()]
    return sse_response(*events)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """An OpenAI-style JSON error."""
    body = {"error": {"message": message, "type": "error", "param": None, "code": None}}
    return httpx.Response(status, json=body, headers=headers)


def request(**model: Any) -> LLMRequest:
    """A request with MESSAGES and the given model settings."""
    return LLMRequest(messages=MESSAGES, model=ModelSettings(**model))


async def collect(llm: OpenAILLM, req: LLMRequest | None = None) -> list[LLMChunk]:
    """Every chunk of one call."""
    return [c async for c in llm.stream(req or request())]


def sent_body(route: respx.Route, call: int = -1) -> dict[str, Any]:
    """The JSON body of a recorded call."""
    return json.loads(route.calls[call].request.content)


@pytest.fixture
async def mock() -> AsyncIterator[respx.MockRouter]:
    """A respx router that fails on unmatched requests."""
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def make_llm() -> AsyncIterator[Callable[..., OpenAILLM]]:
    """Build providers on a respx-visible httpx client; closed after the test."""
    built: list[OpenAILLM] = []
    clients: list[httpx.AsyncClient] = []

    def factory(**overrides: Any) -> OpenAILLM:
        values: dict[str, Any] = {"base_url": BASE_URL, "api_key": KEY, "max_retries": 2}
        values.update(overrides)
        client = httpx.AsyncClient()
        clients.append(client)
        llm = OpenAILLM(LLMSettings(**values), http_client=client)
        built.append(llm)
        return llm

    yield factory
    for llm in built:
        await llm.aclose()
    for client in clients:
        await client.aclose()


# -- streaming ---------------------------------------------------------------------------------


async def test_streams_text_in_order_then_usage(mock, make_llm):
    route = mock.post(URL).mock(return_value=text_stream("Hel", "lo", " there", "!"))
    chunks = await collect(make_llm())
    assert [c.text for c in chunks if c.text] == ["Hel", "lo", " there", "!"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1] == LLMChunk(usage=Usage(prompt_tokens=7, completion_tokens=3))
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_is_an_llm_provider(make_llm):
    llm = make_llm()
    assert isinstance(llm, LLMProvider)
    assert llm.name == "openai"


async def test_request_body(mock, make_llm):
    route = mock.post(URL).mock(return_value=text_stream("ok"))
    tools = [
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    model = ModelSettings(
        model="deepseek-chat",
        temperature=0.7,
        top_p=0.9,
        max_tokens=50,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        top_k=40,
        min_p=0.05,
        repetition_penalty=1.1,
    )
    await collect(make_llm(), LLMRequest(messages=MESSAGES, model=model, tools=tools))
    body = sent_body(route)
    assert body["model"] == "deepseek-chat"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 50
    assert body["presence_penalty"] == 0.5
    assert body["frequency_penalty"] == -0.5
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (40, 0.05, 1.1)
    assert "extra_body" not in body
    assert body["tools"] == tools


async def test_unset_fields_are_not_sent_and_model_falls_back(mock, make_llm):
    route = mock.post(URL).mock(return_value=text_stream("ok"))
    await collect(
        make_llm(model="my-default"), LLMRequest(messages=MESSAGES, model=ModelSettings())
    )
    body = sent_body(route)
    assert body["model"] == "my-default"
    absent = {"temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty"}
    absent |= {"top_k", "min_p", "repetition_penalty", "tools", "extra_body"}
    assert not absent & body.keys()


async def test_llm_settings_defaults_apply_under_request_model(mock, make_llm):
    route = mock.post(URL).mock(return_value=text_stream("ok"))
    llm = make_llm(temperature=0.2, max_tokens=100)
    await collect(llm, request(temperature=1.5))
    body = sent_body(route)
    assert (body["temperature"], body["max_tokens"]) == (1.5, 100)


async def test_base_url_honoured(mock, make_llm):
    route = mock.post("http://other.test:8080/api/v1/chat/completions").mock(
        return_value=text_stream("ok")
    )
    chunks = await collect(make_llm(base_url="http://other.test:8080/api/v1"))
    assert route.called
    assert "".join(c.text for c in chunks) == "ok"


async def test_tool_call_deltas(mock, make_llm):
    def call(index: int, arguments: str, id: str | None = None, name: str | None = None):
        function: dict[str, Any] = {"arguments": arguments}
        if name:
            function["name"] = name
        delta = {"index": index, "function": function}
        if id:
            delta |= {"id": id, "type": "function"}
        return chunk({"tool_calls": [delta]})

    mock.post(URL).mock(
        return_value=sse_response(
            chunk({"role": "assistant", "content": None}),
            call(0, "", id="call_a", name="get_weather"),
            call(0, '{"city":'),
            call(1, "", id="call_b", name="get_time"),
            call(1, '{"tz": "UTC"}'),
            call(0, ' "Paris"}'),
            chunk({}, "tool_calls"),
            usage_chunk(),
        )
    )
    chunks = await collect(make_llm())
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas == [
        ToolCallDelta(index=0, id="call_a", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=1, id="call_b", name="get_time", arguments=""),
        ToolCallDelta(index=1, arguments='{"tz": "UTC"}'),
        ToolCallDelta(index=0, arguments=' "Paris"}'),
    ]
    arguments = {0: "", 1: ""}
    for delta in deltas:
        arguments[delta.index] += delta.arguments
    assert json.loads(arguments[0]) == {"city": "Paris"}
    assert json.loads(arguments[1]) == {"tz": "UTC"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert not any(c.text for c in chunks)


async def test_reasoning_content_ignored(mock, make_llm):
    mock.post(URL).mock(
        return_value=sse_response(
            chunk({"role": "assistant", "content": None, "reasoning_content": "Let me think"}),
            chunk({"content": None, "reasoning_content": " hard."}),
            chunk({"content": "Answer", "reasoning_content": None}),
            chunk({}, "stop"),
            usage_chunk(),
        )
    )
    chunks = await collect(make_llm(model="deepseek-reasoner"))
    assert "".join(c.text for c in chunks) == "Answer"
    assert all(c.text or c.finish_reason or c.usage for c in chunks)


async def test_null_or_empty_choices_and_comments(mock, make_llm):
    mock.post(URL).mock(
        return_value=sse_response(
            ": OPENROUTER PROCESSING\n\n",
            chunk({"content": "a"}),
            {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [],
            },
            chunk({"content": "b"}, "stop"),
            usage_chunk(4, 2, choices=None),
        )
    )
    chunks = await collect(make_llm())
    assert chunks == [
        LLMChunk(text="a"),
        LLMChunk(text="b", finish_reason="stop"),
        LLMChunk(usage=Usage(4, 2)),
    ]


async def test_fields_of_the_wrong_type_count_as_absent(mock, make_llm):
    # Chunks are read as the JSON they are (no SDK model per chunk): what a sloppy compatible
    # server sends in the wrong shape is skipped, never a crash mid-reply.
    mock.post(URL).mock(
        return_value=sse_response(
            chunk({"content": 5}),
            {"choices": "nope"},
            [1, 2],
            {"choices": [None]},
            chunk(None),
            chunk({"content": "a", "tool_calls": "x"}),
            chunk({"tool_calls": [7, {"index": "0", "function": "f", "id": 3}]}),
            chunk({"content": "b"}, 9),
            {"choices": [], "usage": {"prompt_tokens": "4", "completion_tokens": 2}},
            {"choices": [], "usage": "lots"},
        )
    )
    chunks = await collect(make_llm())
    assert chunks == [
        LLMChunk(text="a"),
        LLMChunk(tool_calls=(ToolCallDelta(index=1, id=None, name=None, arguments=""),)),
        LLMChunk(text="b"),
        LLMChunk(usage=Usage(0, 2)),
    ]


async def test_stream_without_usage_chunk(mock, make_llm):
    mock.post(URL).mock(return_value=sse_response(chunk({"content": "a"}), chunk({}, "length")))
    chunks = await collect(make_llm())
    assert chunks == [LLMChunk(text="a"), LLMChunk(finish_reason="length")]


# -- errors ------------------------------------------------------------------------------------


async def test_401_names_the_setting(mock, make_llm):
    route = mock.post(URL).mock(return_value=error_response(401, f"Incorrect API key: {KEY}"))
    with pytest.raises(ProviderAuthError) as info:
        await collect(make_llm())
    message = str(info.value)
    assert message == "LLM authentication failed (401): check llm.api_key or OPENAI_API_KEY"
    assert KEY not in message
    assert info.value.code == "provider_auth"
    assert info.value.provider == "openai"
    assert route.call_count == 1  # not retried


async def test_403_is_auth_error(mock, make_llm):
    mock.post(URL).mock(return_value=error_response(403, "Country not supported"))
    with pytest.raises(ProviderAuthError, match=r"\(403\).*llm.api_key"):
        await collect(make_llm())


async def test_429_retried_then_rate_limited(mock, make_llm):
    route = mock.post(URL).mock(return_value=error_response(429, "Slow down", FAST_RETRY))
    with pytest.raises(ProviderRateLimited, match="Slow down") as info:
        await collect(make_llm(max_retries=2))
    assert route.call_count == 3
    assert info.value.retryable


async def test_500_retried_then_unavailable(mock, make_llm):
    route = mock.post(URL).mock(return_value=error_response(500, "Boom", FAST_RETRY))
    with pytest.raises(ProviderUnavailable, match=r"\(500\): Boom"):
        await collect(make_llm(max_retries=2))
    assert route.call_count == 3


async def test_503_then_success(mock, make_llm):
    route = mock.post(URL).mock(
        side_effect=[error_response(503, "Busy", FAST_RETRY), text_stream("fine")]
    )
    chunks = await collect(make_llm(max_retries=2))
    assert "".join(c.text for c in chunks) == "fine"
    assert route.call_count == 2


async def test_other_status_keeps_server_message(mock, make_llm):
    route = mock.post(URL).mock(return_value=error_response(404, "The model `nope` does not exist"))
    with pytest.raises(ProviderError) as info:
        await collect(make_llm())
    assert type(info.value) is ProviderError
    assert str(info.value) == "LLM request failed (404): The model `nope` does not exist"
    assert route.call_count == 1


async def test_api_key_scrubbed_from_messages(mock, make_llm):
    mock.post(URL).mock(return_value=error_response(400, f"bad key {KEY} in header"))
    with pytest.raises(ProviderError) as info:
        await collect(make_llm())
    assert KEY not in str(info.value)
    assert "***" in str(info.value)


async def test_timeout(mock, make_llm):
    route = mock.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout) as info:
        await collect(make_llm(max_retries=0))
    assert info.value.retryable
    assert route.call_count == 1


async def test_connection_error(mock, make_llm):
    mock.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        await collect(make_llm(max_retries=0))


async def test_missing_key_without_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = OpenAILLM(LLMSettings(api_key=""))
    with pytest.raises(ProviderAuthError, match=r"llm\.api_key or OPENAI_API_KEY"):
        await anext(llm.stream(request()))


async def test_key_from_environment(mock, make_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    route = mock.post(URL).mock(return_value=text_stream("ok"))
    await collect(make_llm(api_key=""))
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-from-env"


async def test_local_server_needs_no_key(mock, make_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = mock.post(URL).mock(return_value=text_stream("ok"))
    chunks = await collect(make_llm(api_key=""))
    assert "".join(c.text for c in chunks) == "ok"
    assert route.called


class SlowBody(httpx.AsyncByteStream):
    """Streams ``first`` then fails with ``error``, or hangs; records whether it was closed."""

    def __init__(self, first: bytes, error: Exception | None = None) -> None:
        self.first = first
        self.error = error
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        if self.error is not None:
            raise self.error
        await asyncio.sleep(30)
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        self.closed = True


def slow_response(body: SlowBody) -> httpx.Response:
    """A 200 SSE response streaming ``body``."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ReadError("reset"), ProviderUnavailable),
        (httpx.ReadTimeout("slow"), ProviderTimeout),
    ],
)
async def test_transport_error_mid_stream(mock, make_llm, error, expected):
    body = SlowBody(sse(chunk({"content": "par"}), done=False), error)
    mock.post(URL).mock(return_value=slow_response(body))
    received: list[str] = []
    with pytest.raises(expected):
        async for piece in make_llm().stream(request()):
            received.append(piece.text)
    assert received == ["par"]
    assert body.closed


async def test_error_event_mid_stream(mock, make_llm):
    error = {"error": {"message": "Provider returned error", "code": 502}}
    mock.post(URL).mock(return_value=sse_response(chunk({"content": "par"}), error))
    received: list[str] = []
    with pytest.raises(ProviderUnavailable, match=r"\(502\): Provider returned error"):
        async for piece in make_llm().stream(request()):
            received.append(piece.text)
    assert received == ["par"]


async def test_error_event_without_code_mid_stream(mock, make_llm):
    error = {"error": {"message": "something broke"}}
    mock.post(URL).mock(return_value=sse_response(chunk({"content": "par"}), error))
    with pytest.raises(ProviderError, match="something broke"):
        await collect(make_llm())


# -- early stop --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")
async def test_cancelled_consumer_closes_the_response(mock, make_llm):
    body = SlowBody(sse(chunk({"content": "first"}), done=False))
    mock.post(URL).mock(return_value=slow_response(body))
    received: list[str] = []
    got_first = asyncio.Event()

    async def consume() -> None:
        async for piece in make_llm().stream(request()):
            received.append(piece.text)
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received == ["first"]
    assert body.closed


@pytest.mark.filterwarnings("error")
async def test_consumer_stopping_early_closes_the_response(mock, make_llm):
    body = SlowBody(sse(chunk({"content": "first"}), done=False))
    mock.post(URL).mock(return_value=slow_response(body))
    stream = make_llm().stream(request())
    assert (await anext(stream)).text == "first"
    await stream.aclose()
    assert body.closed


# -- plugin ------------------------------------------------------------------------------------


def test_plugin_registers_openai_without_importing_the_sdk():
    code = (
        "import sys\n"
        "import parley.plugins.openai.plugin\n"
        "assert 'openai' not in sys.modules, 'openai imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_factory_builds_the_provider():
    from parley.plugins.openai import plugin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="openai")
    registered: dict[str, Any] = {}
    pm.hook.register_llm_providers(register=registered.__setitem__)
    settings = Settings(llm=LLMSettings(api_key=KEY, model="m"))
    llm = registered["openai"](settings)
    assert isinstance(llm, OpenAILLM)
    assert llm.settings is settings.llm
