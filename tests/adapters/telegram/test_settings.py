"""``[telegram]`` settings: defaults, the token variable, and errors that name the key."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from parley.adapters.telegram.settings import TelegramSettings, load_telegram_settings
from parley.cli import main
from parley.core.config import SettingsError

TOKEN = "123456:TEST-token_not-real"


def test_defaults_do_not_need_a_token(make_settings, monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = load_telegram_settings(make_settings())
    assert settings == TelegramSettings()
    assert (settings.mode, settings.reply_voice, settings.stream_edits) == (
        "polling",
        "auto",
        False,
    )
    assert settings.api_base == "https://api.telegram.org"


def test_token_falls_back_to_the_environment(make_settings, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    settings = load_telegram_settings(make_settings({"telegram": {"enabled": True}}))
    assert settings.resolved_token() == TOKEN


@pytest.mark.parametrize(
    ("section", "key", "fragment"),
    [
        ({"enabled": True}, "telegram.token", "TELEGRAM_BOT_TOKEN"),
        ({"enabled": True, "token": "not a token"}, "telegram.token", "BotFather"),
        ({"mode": "push"}, "telegram.mode", "polling, webhook"),
        ({"reply_voice": "sometimes"}, "telegram.reply_voice", "auto, always, never"),
        ({"api_base": "ftp://x"}, "telegram.api_base", "http"),
        ({"webhook_secret": "has spaces"}, "telegram.webhook_secret", "{0,256}"),
        ({"webhook_secret": "x" * 257}, "telegram.webhook_secret", "{0,256}"),
        (
            {"enabled": True, "token": TOKEN, "mode": "webhook", "webhook_secret": "abc"},
            "telegram.webhook_url",
            "webhook",
        ),
        (
            {"enabled": True, "token": TOKEN, "mode": "webhook", "webhook_url": "https://x/y"},
            "telegram.webhook_secret",
            "must be set",
        ),
        ({"template": "nope"}, "telegram.template", "solo"),
    ],
)
def test_bad_values_name_the_key(make_settings, monkeypatch, section, key, fragment):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    with pytest.raises(SettingsError) as caught:
        load_telegram_settings(make_settings({"telegram": section}))
    message = str(caught.value)
    assert message.startswith(f"{key}:") and fragment in message
    assert TOKEN not in message


def test_wants_voice():
    auto, always, never = (TelegramSettings(reply_voice=v) for v in ("auto", "always", "never"))
    assert (auto.wants_voice(True), auto.wants_voice(False)) == (True, False)
    assert (always.wants_voice(True), always.wants_voice(False)) == (True, True)
    assert (never.wants_voice(True), never.wants_voice(False)) == (False, False)


def test_cli_commands_refuse_bad_telegram_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "settings.toml").write_text('[telegram]\nenabled = true\nmode = "webhook"\n')
    runner = CliRunner()
    for command in ("telegram", "serve"):
        result = runner.invoke(main, [command, "--settings", str(folder)])
        assert result.exit_code == 2, result.output
        assert "settings error: telegram.token" in result.output


def test_shipped_settings_and_docs_cover_every_key():
    import tomllib
    from dataclasses import fields
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    shipped = tomllib.loads((root / "settings" / "settings.toml").read_text())["telegram"]
    default = TelegramSettings()
    assert shipped == {f.name: getattr(default, f.name) for f in fields(TelegramSettings)}
    settings_doc = (root / "docs" / "settings.md").read_text()
    adapters_doc = (root / "docs" / "adapters.md").read_text()
    for f in fields(TelegramSettings):
        assert f"`PARLEY_TELEGRAM__{f.name.upper()}`" in settings_doc, f.name
        assert f"| `{f.name}` |" in adapters_doc, f.name
