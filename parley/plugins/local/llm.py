"""The ``local`` LLM provider: a llama.cpp server (xllamacpp) on 127.0.0.1, spoken to through
the ``openai`` provider, so streaming, usage and errors work exactly as with a cloud model.

The server starts in a thread (about a second), listens on a free loopback port and answers one
request at a time with ``local.llm.threads`` threads. Replies are capped at
``local.llm.max_tokens`` tokens (a small model loops without a cap) and sampled no hotter than
``local.llm.max_temperature``. Tools are not offered: the shipped 135M model cannot call them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from parley.core.config import LLMSettings
from parley.core.providers import LLMChunk, LLMRequest, ProviderUnavailable
from parley.plugins.echo.llm import message_text
from parley.plugins.local.settings import LocalLLMSettings

__all__ = ["LlamaServer", "LocalLLM"]

log = logging.getLogger(__name__)

NAME = "local"
ALIAS = "local"
"""The model name the server answers to."""
READY_TIMEOUT = 120.0
CHARS_PER_TOKEN = 3
"""A cautious estimate for English text (about 4 in practice): the prompt must fit."""
PROMPT_SLACK = 64
"""Tokens kept free for the chat template's own markup."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fit(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """``messages`` as a small model's context holds them: plain text only (tool calls and
    results left out: the model cannot use them), the oldest turns dropped until about
    ``budget`` characters are left; the system prompt and the last message always stay (the
    last one cut from its start if it alone is too long)."""
    plain = [
        {"role": m["role"], "content": message_text(m.get("content"))}
        for m in messages
        if m.get("role") in ("system", "user", "assistant")
    ]
    plain = [m for m in plain if m["content"]]
    system = [m for m in plain[:1] if m["role"] == "system"]
    rest = plain[len(system) :]
    used = sum(len(m["content"]) for m in plain)
    while len(rest) > 1 and used > budget:
        used -= len(rest.pop(0)["content"])
    if rest and used > budget:
        keep = max(0, budget - (used - len(rest[-1]["content"])))
        rest[-1] = {**rest[-1], "content": rest[-1]["content"][-keep:] if keep else ""}
    return system + rest


def instructed(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    """``messages`` with ``instruction`` on a line after the system prompt (or as one)."""
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n{instruction}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


class LlamaServer:
    """One xllamacpp server serving a GGUF file on loopback. Thread-safe; usable from any loop."""

    def __init__(self, model: Path, settings: LocalLLMSettings) -> None:
        self.model = model
        self.settings = settings
        self.port = 0
        self.load_seconds: float | None = None
        self.error: BaseException | None = None
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (after :meth:`start`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ready(self) -> bool:
        """True once the server answers."""
        return self._server is not None and self.load_seconds is not None

    def start(self) -> None:
        """Load the model and start serving (blocks about a second); idempotent."""
        with self._lock:
            if self._server is not None:
                return
            started = time.monotonic()
            try:
                import xllamacpp as xlc

                params = xlc.CommonParams()
                params.model.path = str(self.model)
                params.n_ctx = self.settings.context
                params.cpuparams.n_threads = self.settings.threads
                params.cpuparams_batch.n_threads = self.settings.threads
                params.hostnames = ["127.0.0.1"]
                params.port = self.port = free_port()
                params.model_alias = {ALIAS}
                params.verbosity = -1  # llama.cpp writes to stderr; keep the console readable
                self._server = xlc.Server(params)
                self._wait_until_healthy()
                self._warm_up()
            except BaseException as exc:
                self.error = exc
                self._server = None
                raise
            self.load_seconds = time.monotonic() - started

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/health"
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local LLM server did not answer within {READY_TIMEOUT} s")
            time.sleep(0.05)

    def _warm_up(self) -> None:
        """One token of a chat: the first real reply then starts as fast as the next ones."""
        body = {"model": ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=READY_TIMEOUT)

    def stop(self) -> None:
        """Stop serving (the xllamacpp server stops when its object goes)."""
        with self._lock:
            self._server = None
            self.load_seconds = None


class LocalLLM:
    """Streams replies from a local llama.cpp server through the ``openai`` provider."""

    name = NAME
    first_token_timeout = 30.0
    """The failover chain's watchdogs for this provider (unless set in its settings): a small
    model on a busy CPU is slower to start and between tokens than a cloud API."""
    stall_timeout = 15.0

    def __init__(
        self,
        llm: LLMSettings,
        settings: LocalLLMSettings,
        server: LlamaServer,
        *,
        owns_server: bool = True,
    ) -> None:
        self.llm_settings = llm
        self.settings = settings
        self.server = server
        self._owns_server = owns_server
        self._openai: Any = None
        self._starting: asyncio.Future[None] | None = None
        self.load_error: str | None = None

    @property
    def model_name(self) -> str:
        """The model file's name, for logs and /health."""
        return self.server.model.name

    @property
    def ready(self) -> bool:
        """True once the model is loaded."""
        return self.server.ready

    async def load(self) -> None:
        """Start the server in a thread (once; later callers wait for the same start)."""
        if self.server.ready:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(asyncio.to_thread(self.server.start))
        try:
            await asyncio.shield(self._starting)
            self.load_error = None
        except Exception as exc:
            self._starting = None
            self.load_error = str(exc)
            raise ProviderUnavailable(
                f"the local LLM failed to start: {exc}", provider=NAME
            ) from exc

    def _client(self) -> Any:
        if self._openai is None:
            from parley.plugins.openai.llm import OpenAILLM

            settings = replace(
                self.llm_settings,
                base_url=self.server.base_url,
                api_key="",
                model=ALIAS,
                timeout=max(self.llm_settings.timeout, 120.0),
                max_retries=0,
            )
            self._openai = OpenAILLM(settings)
        return self._openai

    def request_for(self, request: LLMRequest) -> LLMRequest:
        """``request`` as the local model takes it: its alias, the token cap, the temperature
        cap, no presence or frequency penalties (they garble a small model), no tools, the
        history cut to fit the context window."""
        cap = self.settings.max_tokens
        wanted = request.model.max_tokens or self.llm_settings.max_tokens
        hottest = self.settings.max_temperature
        temperature = request.model.temperature
        model = replace(
            request.model,
            model=ALIAS,
            max_tokens=min(wanted, cap) if wanted else cap,
            temperature=hottest if temperature is None else min(temperature, hottest),
            presence_penalty=None,
            frequency_penalty=None,
        )
        tokens = max(self.settings.context - model.max_tokens - PROMPT_SLACK, PROMPT_SLACK)
        budget = tokens * CHARS_PER_TOKEN
        messages = fit(request.messages, budget)
        if self.settings.instruction:
            messages = instructed(messages, self.settings.instruction)
        return LLMRequest(messages=messages, model=model)

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Load the model if needed, then yield the reply as the server streams it."""
        await self.load()
        async for chunk in self._client().stream(self.request_for(request)):
            yield chunk

    async def aclose(self) -> None:
        """Close the client; stop the server when this provider started it."""
        if self._openai is not None:
            await self._openai.aclose()
            self._openai = None
        if self._owns_server:
            await asyncio.to_thread(self.server.stop)
