"""Logs: ``logging.format = "json"`` on a real ``parley serve``, and one line per finished turn."""

from __future__ import annotations

import json
import logging

import pytest

from parley.core import store
from parley.core.config import SettingsError
from parley.core.inbound import Inbound
from parley.logs import JsonFormatter, configure_logging
from parley.testing import ParleyProcess, Step, collect
from tests.test_cli import _settings


def test_serve_writes_json_lines_with_one_per_turn(tmp_path):
    with ParleyProcess(_settings(tmp_path), env={"PARLEY_LOGGING__FORMAT": "json"}) as served:
        reply = served.chat("hello there", "device-logs")
        assert reply.status_code == 200, reply.text
    out, err = served.out, served.err
    banner = ("Providers:", "Parley listening")  # the command's own words to the terminal
    text = [line for line in (out + err).splitlines() if line.strip() and not line.startswith("{")]
    assert all(line.startswith(banner) for line in text), text
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    turns = [line for line in lines if line["logger"] == "parley.turn"]
    assert len(turns) == 1
    turn = turns[0]["turn"]
    assert turn["conversation_id"] == reply.json()["conversation_id"]
    assert turn["status"] == "complete"
    assert turn["providers"] == {"llm": ["echo"]}
    assert turn["duration_ms"] >= turn["first_token_ms"] >= 0
    # uvicorn's access lines (on stdout, after the banner) are JSON too, secrets redacted.
    access = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {line["logger"] for line in access} == {"uvicorn.access"}
    assert any("POST /chat" in line["message"] for line in access), access


async def test_one_line_per_turn_says_what_happened(make_engine, llm, caplog):
    llm.push(Step(["Hello ", "you."]))
    engine = make_engine()
    user = await store.get_or_create_user("test", "logs")
    conversation = (await engine.open(user.id, "test")).conversation
    with caplog.at_level(logging.INFO, logger="parley.turn"):
        await collect(engine.turn(conversation.id, Inbound(text="hi")))
    (record,) = [r for r in caplog.records if r.name == "parley.turn"]
    assert record.turn["conversation_id"] == conversation.id
    assert record.turn["status"] == "complete"
    line = json.loads(JsonFormatter().format(record))
    assert line["turn"]["message_ids"] and line["turn"]["user_message_id"]
    assert line["level"] == "INFO" and conversation.id in line["message"]


def test_a_bad_logging_format_is_named(make_settings):
    with pytest.raises(SettingsError, match=r"logging\.format"):
        configure_logging(make_settings({"logging": {"format": "xml"}}))
