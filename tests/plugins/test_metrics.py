"""``GET /metrics`` on a real server after real turns (a local OpenAI-compatible server that fails
once, a fallback that answers, spoken replies)."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from parley import hookimpl
from parley.core import store
from parley.core.inbound import Inbound
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.core.speech import SpeechOptions
from parley.fake_services import FakeOpenAIServer
from parley.server import create_app
from parley.testing import ParleyProcess, ToneTTS, collect, running_server


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(all_samples, name: str, **labels: str) -> float:
    return all_samples.get((name, tuple(sorted(labels.items()))), 0.0)


def runtime_with(make_settings, extra) -> Runtime:
    class Tone:
        @hookimpl
        def register_tts_providers(self, register):
            register("tone", lambda settings: ToneTTS())

    pm = make_plugin_manager((), entry_points=False, extra=[("tone", Tone())])
    return Runtime(make_settings(extra), pm)


async def test_metrics_after_a_few_turns(make_settings):
    async with FakeOpenAIServer() as primary, FakeOpenAIServer() as fallback:
        primary.push(("status", 500), ("text", ["Fine, ", "thanks."]))
        fallback.push(("text", ["From the fallback."]))
        extra = {
            "metrics": {"enabled": True},
            "tts": {"provider": "tone"},
            "web": {"rate_limit": 0},
            "llm": {
                "provider": "openai",
                "base_url": primary.base_url,
                "api_key": "k",
                "fallbacks": [
                    {"provider": "openai", "base_url": fallback.base_url, "api_key": "k"}
                ],
            },
        }
        runtime = runtime_with(make_settings, extra)
        async with running_server(create_app(runtime.settings, runtime)) as base:
            user = await store.get_or_create_user("test", "m")
            conversation = (await runtime.engine.open(user.id, "test")).conversation
            for text in ("hello", "how are you"):
                await collect(
                    runtime.engine.turn(
                        conversation.id, Inbound(text=text), speech=SpeechOptions("pcm_16000")
                    )
                )
            await runtime.inbox.put("nobody-answers", "item-1", "lane-1")  # waits: no handler
            async with connect(base.replace("http://", "ws://") + "/ws?device_id=device-m"):
                async with httpx.AsyncClient() as client:
                    for _ in range(100):
                        response = await client.get(f"{base}/metrics")
                        found = samples(response.text)
                        if value(found, "parley_live_conversations"):
                            break
                        await asyncio.sleep(0.02)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value(found, "parley_open_websockets") == 1
    assert value(found, "parley_turns_total", status="complete") == 2
    assert value(found, "parley_turn_duration_seconds_count") == 2
    assert value(found, "parley_time_to_first_token_seconds_count") == 2
    assert value(found, "parley_time_to_first_audio_seconds_count") == 2
    first_audio = value(found, "parley_time_to_first_audio_seconds_sum")
    first_token = value(found, "parley_time_to_first_token_seconds_sum")
    assert 0 < first_token <= first_audio <= value(found, "parley_turn_duration_seconds_sum")
    # The first turn fell back; the second was answered by the primary again.
    llm = {"kind": "llm", "operation": "stream"}
    assert value(found, "parley_provider_latency_seconds_count", provider="openai", **llm) == 1
    assert value(found, "parley_provider_latency_seconds_count", provider="openai#2", **llm) == 1
    errors = value(
        found,
        "parley_provider_errors_total",
        kind="llm",
        provider="openai",
        code="provider_unavailable",
    )
    assert errors == 1
    fallbacks = value(
        found,
        "parley_fallbacks_total",
        kind="llm",
        from_provider="openai",
        to_provider="openai#2",
        code="provider_unavailable",
    )
    assert fallbacks == 1
    tts = {"kind": "tts", "provider": "tone-tts", "operation": "synthesize"}
    assert value(found, "parley_provider_latency_seconds_count", **tts) == 2  # a sentence each
    assert value(found, "parley_tokens_total", direction="in", provider="openai") == 5
    assert value(found, "parley_tokens_total", direction="out", provider="openai#2") == 3
    assert value(found, "parley_breaker_state", kind="llm", provider="openai") == 0
    assert value(found, "parley_inbox_depth") == 1
    assert value(found, "parley_live_conversations") == 1  # the socket's


async def test_metrics_are_off_by_default(make_settings):
    runtime = runtime_with(make_settings, {"web": {"rate_limit": 0}})
    async with running_server(create_app(runtime.settings, runtime)) as base:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base}/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_two_processes_answer_for_each_other_in_multiprocess_mode(tmp_path):
    """Two ``parley serve`` processes sharing ``PROMETHEUS_MULTIPROC_DIR``: either one's
    ``/metrics`` counts the turns of both."""
    from tests.test_cli import _settings

    folder = _settings(tmp_path)
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        "PARLEY_METRICS__ENABLED": "true",
        "PARLEY_WEB__RATE_LIMIT": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    with ParleyProcess(folder, env=env) as one, ParleyProcess(folder, env=env) as two:
        for served, device in ((one, "one"), (two, "two")):
            reply = served.chat("hello", f"device-{device}")
            assert reply.status_code == 200, reply.text
        found = samples(httpx.get(f"{one.url}/metrics", timeout=5).text)
    assert value(found, "parley_turns_total", status="complete") == 2, one.err + two.err
    assert value(found, "parley_turn_duration_seconds_count") == 2
