"""Provider choice: a cloud key (or llm.base_url) wins, else the local models, else echo and no
voice, with a start-up notice naming the setting to fill."""

from __future__ import annotations

import pytest

from parley.core.config import ModelSettings, SettingsError
from parley.core.plugins import make_plugin_manager
from parley.core.providers import LLMRequest
from parley.core.runtime import Runtime

AUTO = {"llm": {"provider": "auto"}, "stt": {"provider": "auto"}, "tts": {"provider": "auto"}}
KEYS = ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY")


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


def built(settings, disable=()) -> Runtime:
    runtime = Runtime(settings, make_plugin_manager(disable, entry_points=False))
    runtime.build_providers()
    return runtime


def names(runtime: Runtime) -> tuple:
    return tuple(getattr(getattr(runtime, k), "name", None) for k in ("llm", "stt", "tts"))


def test_without_keys_the_local_models_answer_and_speak(make_settings):
    runtime = built(make_settings(AUTO))
    assert names(runtime) == ("local", "whisper", "piper")
    assert runtime.notices == []
    assert not runtime.llm.primary.ready  # nothing loaded yet: start-up stays quick


def test_cloud_keys_win(make_settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test")
    monkeypatch.setenv("ELEVENLABS_API_KEY", "el-test")
    runtime = built(make_settings(AUTO))
    assert names(runtime) == ("openai", "deepgram", "elevenlabs")
    assert runtime.notices == []


def test_keys_in_settings_win_per_kind(make_settings):
    settings = make_settings({**AUTO, "tts": {"provider": "auto", "api_key": "el-test"}})
    assert names(built(settings)) == ("local", "whisper", "elevenlabs")


async def test_base_url_without_key_is_an_openai_compatible_server(make_settings, llama_server):
    """A local server needs no key: the openai provider sends a placeholder and gets answers."""
    settings = make_settings(
        {**AUTO, "llm": {"provider": "auto", "base_url": llama_server.base_url}}
    )
    runtime = built(settings)
    assert runtime.llm.name == "openai" and runtime.notices == []
    request = LLMRequest(
        messages=[{"role": "user", "content": "Say hello."}],
        model=ModelSettings(model="local", max_tokens=8),
    )
    try:
        chunks = [chunk async for chunk in runtime.llm.stream(request)]
    finally:
        await runtime.llm.aclose()
    assert "".join(c.text for c in chunks).strip()


def test_explicit_openai_with_base_url_and_no_key_is_not_echo(make_settings):
    settings = make_settings({"llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}})
    runtime = built(settings)
    assert runtime.llm.name == "openai" and runtime.notices == []


def test_nothing_installed_means_echo_and_no_voice_with_the_settings_to_fill(make_settings):
    runtime = built(make_settings(AUTO), disable=["local"])
    assert names(runtime) == ("echo", None, None)
    notices = "\n".join(runtime.notices)
    for setting in ("llm.api_key", "llm.base_url", "stt.api_key", "tts.api_key"):
        assert setting in notices
    assert "parley[local]" in notices


def test_every_choice_can_be_named(make_settings):
    named = {"llm": {"provider": "local"}, "stt": {"provider": "whisper"}}
    named["tts"] = {"provider": "piper"}
    assert names(built(make_settings(named))) == ("local", "whisper", "piper")
    cloud = {"llm": {"provider": "echo"}, "stt": {"provider": ""}, "tts": {"provider": ""}}
    assert names(built(make_settings(cloud))) == ("echo", None, None)


def test_a_missing_local_model_file_stops_start_up(make_settings, tmp_path):
    settings = make_settings({**AUTO, "local": {"llm": {"model": str(tmp_path / "no.gguf")}}})
    with pytest.raises(SettingsError, match=r"^local\.llm\.model: no file"):
        built(settings)


def test_a_bad_local_setting_names_its_key(make_settings):
    with pytest.raises(SettingsError, match=r"local\.llm.*threads"):
        built(make_settings({**AUTO, "local": {"llm": {"threads": 0}}}))


def test_a_missing_piper_voice_stops_start_up(make_settings):
    settings = make_settings({**AUTO, "local": {"tts": {"voice": "en_GB-nobody-low"}}})
    with pytest.raises(SettingsError, match=r"^local\.tts\.voice: no piper voice"):
        built(settings)
