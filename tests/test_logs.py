"""Logs: ``logging.format = "json"`` on a real ``parley serve``, and one line per finished turn."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import httpx
import pytest

from parley.core import store
from parley.core.config import SettingsError
from parley.core.inbound import Inbound
from parley.logs import JsonFormatter, configure_logging
from parley.testing import Step, collect
from tests.test_cli import PARLEY, ROOT, _free_port, _settings


def test_serve_writes_json_lines_with_one_per_turn(tmp_path):
    folder = _settings(tmp_path)
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "OPENAI"))}
    environ["PARLEY_LOGGING__FORMAT"] = "json"
    process = subprocess.Popen(
        [*PARLEY, "serve", "--settings", str(folder), "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/chat/",
            json={"content": "hello there"},
            headers={"X-Device-ID": "device-logs"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    turns = [line for line in lines if line["logger"] == "parley.turn"]
    assert len(turns) == 1
    turn = turns[0]["turn"]
    assert turn["conversation_id"] == reply.json()["conversation_id"]
    assert turn["status"] == "complete"
    assert turn["providers"] == {"llm": ["echo"]}
    assert turn["duration_ms"] >= turn["first_token_ms"] >= 0
    # uvicorn's access lines (on stdout, after the banner) are JSON too, secrets redacted.
    access = [json.loads(line) for line in out.splitlines()[1:] if line.strip()]
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
