"""The ``parley`` command, run as a subprocess the way people run it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from parley.testing import ParleyProcess, install_distribution
from parley.testing import run_parley as run

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = """
[database]
url = "sqlite://{db}"
[llm]
provider = "echo"
[conversation]
default_template = "solo"
[personas.alex]
name = "Alex"
system_prompt = "You are Alex."
[personas.maya]
name = "Maya"
system_prompt = "You are Maya."
[templates.solo]
personas = ["alex"]
max_turns = {max_turns}
[templates.duo]
personas = ["alex", "maya"]
[languages.en]
termination_phrases = ["bye"]
prompts.start = "Welcome!"
prompts.end = "See you soon."
"""


def _settings(tmp_path: Path, max_turns: int = 0) -> Path:
    folder = tmp_path / "settings"
    folder.mkdir(exist_ok=True)
    (folder / "settings.toml").write_text(
        SETTINGS.format(db=tmp_path / "cli.sqlite3", max_turns=max_turns)
    )
    return folder


def test_chat_scripted_from_stdin(tmp_path):
    folder = _settings(tmp_path)
    result = run(["chat", "--settings", str(folder), "--user", "ann"], stdin="hello there\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Alex> Welcome!"
    assert "Alex> You said: hello there." in lines
    assert lines[-1] == "Alex> See you soon."  # end of input ends the conversation


def test_chat_termination_and_quit(tmp_path):
    folder = _settings(tmp_path)
    result = run(["chat", "--settings", str(folder)], stdin="one\nbye\nnever read\n")
    assert result.returncode == 0, result.stderr
    assert "never read" not in result.stdout
    assert result.stdout.count("See you soon.") == 1
    quit_result = run(["chat", "--settings", str(folder)], stdin="/quit\nnot read\n")
    assert quit_result.stdout.splitlines() == ["Alex> Welcome!", "Alex> See you soon."]


def test_chat_max_turns_and_template(tmp_path):
    folder = _settings(tmp_path, max_turns=1)
    result = run(["chat", "--settings", str(folder)], stdin="first\nsecond\n")
    assert "You said: first." in result.stdout and "second" not in result.stdout
    duo = run(["chat", "--settings", str(folder), "--template", "duo"], stdin="hi all\n")
    assert "Alex> You said: hi all." in duo.stdout
    # Maya sees Alex's reply, labelled with his name, as the latest thing said.
    assert "Maya> You said: [Alex]: You said: hi all." in duo.stdout
    bad = run(["chat", "--settings", str(folder), "--template", "nope"])
    assert bad.returncode == 2 and "unknown template 'nope'" in bad.stderr


def test_openai_without_key_falls_back_to_echo(tmp_path):
    folder = _settings(tmp_path)
    env = {"PARLEY_LLM__PROVIDER": "openai"}
    result = run(["chat", "--settings", str(folder)], stdin="hi\n", env=env)
    assert result.returncode == 0, result.stderr
    assert "llm.api_key" in result.stderr and "echo" in result.stderr
    assert "You said: hi." in result.stdout


def test_settings_error_exits_2(tmp_path):
    folder = _settings(tmp_path)
    result = run(["chat", "--settings", str(folder)], env={"PARLEY_SERVER__PORT": "0"})
    assert result.returncode == 2
    assert result.stderr.startswith("settings error: server")
    assert "Traceback" not in result.stderr


def test_bad_voice_setting_exits_2(tmp_path):
    folder = _settings(tmp_path)
    env = {"PARLEY_TTS__PROVIDER": "elevenlabs", "PARLEY_TTS__OUTPUT_FORMAT": "wav"}
    result = run(["chat", "--settings", str(folder)], stdin="hi\n", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("settings error: tts.output_format: ")
    assert "Traceback" not in result.stderr


def test_adapter_settings_error_exits_2(tmp_path):
    folder = _settings(tmp_path)
    env = {"PARLEY_WEB__REQUIRE_AUTH": "true"}
    for command in ("serve", "plugins"):
        result = run([command, "--settings", str(folder)], env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("settings error: web.require_auth"), result.stderr
        assert "Traceback" not in result.stderr


def test_help_describes_commands():
    result = run(["--help"])
    for command in ("serve", "chat", "plugins", "db"):
        assert command in result.stdout


def test_db_upgrade(tmp_path):
    folder = _settings(tmp_path)
    first = run(["db", "upgrade", "--settings", str(folder)])
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = run(["db", "upgrade", "--settings", str(folder)])
    assert second.stdout.strip() == "nothing to apply"


@pytest.fixture(scope="module")
def hello_plugin(tmp_path_factory) -> Path:
    """The parley-hello distribution installed into a folder on the test's PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    install_distribution(ROOT / "tests" / "fixtures" / "parley-hello", target)
    return target


def test_plugins_lists_builtins_and_entry_points(tmp_path, hello_plugin):
    folder = _settings(tmp_path)
    env = {"PYTHONPATH": str(hello_plugin)}
    result = run(["plugins", "--settings", str(folder)], env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "openai  [built-in]" in out and "echo  [built-in]" in out
    assert "hello  [entry point (parley-hello 0.3.0)]" in out
    assert "register_commands, register_llm_providers, transform_response" in out
    assert "llm providers: echo, hello, local, openai" in out


def test_a_plugin_adds_a_command(hello_plugin):
    env = {"PYTHONPATH": str(hello_plugin)}
    result = run(["hello", "Ada"], env=env)
    assert (result.returncode, result.stdout) == (0, "Hello, Ada, from parley-hello\n")
    listed = run(["--help"], env=env).stdout
    assert "hello" in listed and "Greet NAME from the plugin." in listed
    assert "serve" in listed  # the built-ins stay
    assert run(["hello", "Ada"]).returncode == 2  # without the plugin: no such command


def test_entry_point_plugin_in_a_conversation(tmp_path, hello_plugin):
    folder = _settings(tmp_path)
    env = {"PYTHONPATH": str(hello_plugin), "PARLEY_LLM__PROVIDER": "hello"}
    result = run(["chat", "--settings", str(folder)], stdin="hi\n", env=env)
    assert "Alex> Hello from a plugin" in result.stdout
    disabled = run(
        ["plugins", "--settings", str(folder)],
        env={**env, "PARLEY_PLUGINS__DISABLE": '["hello", "echo"]'},
    )
    assert "hello" not in disabled.stdout and "echo  [" not in disabled.stdout


def test_serve_health_and_clean_exit(tmp_path):
    folder = _settings(tmp_path)
    # Without a key, openai falls back to echo and says so.
    with ParleyProcess(folder, env={"PARLEY_LLM__PROVIDER": "openai"}) as served:
        body = served.wait_healthy()
        assert body == {
            "status": "ok",
            "database": "ok",
            "redis": "not configured",
            "providers": {"llm": "echo", "stt": None, "tts": None},
            "down": [],
            "pid": served.pid,
        }
        schema = httpx.get(f"{served.url}/schema/openapi.json", timeout=5)
        assert schema.status_code == 200 and "/health" in schema.json()["paths"]
        secret = httpx.get(f"{served.url}/health?token=SECRET-ABC123", timeout=5)
        assert secret.status_code == 200
        missing = httpx.get(f"{served.url}/nope", timeout=5)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    # stop() waited for it (it hangs if a connection stays open)
    out, err = served.out, served.err
    assert served.process.returncode == 0, err
    assert "/health?token=***" in out + err  # the access log keeps the line...
    assert "SECRET-ABC123" not in out + err  # ...without the secret
    assert "llm.api_key" in err and "echo" in err  # says which setting to fill
    assert (tmp_path / "cli.sqlite3").exists()  # migrations applied at start


def test_bad_plugin_setting_exits_2(tmp_path):
    folder = _settings(tmp_path)
    result = run(["chat", "--settings", str(folder)], env={"PARLEY_MEMORY__EVERY_TURNS": "-3"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("settings error: memory.every_turns"), result.stderr
