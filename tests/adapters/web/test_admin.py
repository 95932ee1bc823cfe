"""Reloading the settings folder is an operator action (web.admin_token), off the event loop,
and every plugin sees the reloaded settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from parley import hookimpl
from parley.core.loading import load_settings
from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.server import create_app
from parley.testing import ScriptedLLM, running_server

ADMIN = "an-operator-token-0123456789"
RELOAD = "/api/v1/admin/reload-settings"
SESSION = "/api/v1/chatbot/session"

SETTINGS_TOML = """
[database]
url = "sqlite://{db}"
[llm]
provider = "scripted"
[web]
rate_limit = 0
{admin}
[conversation]
default_template = "solo"
[routing]
mode = "{routing}"
[threads]
marker = "{marker}"
"""
TEMPLATES_TOML = """
[templates.solo]
personas = ["alex"]

[templates.desk]
personas = ["alex", "sam"]

[[templates.desk.agents]]
persona = "alex"
intents = ["hello"]

[[templates.desk.agents]]
persona = "sam"
intents = ["appointment"]
"""


def _write(
    folder: Path,
    alex: str,
    *,
    admin: bool = True,
    routing: str = "keyword",
    marker: str = "first",
) -> None:
    folder.mkdir(exist_ok=True)
    settings = SETTINGS_TOML.format(
        db=folder / "db.sqlite3",
        admin=f'admin_token = "{ADMIN}"' if admin else "",
        routing=routing,
        marker=marker,
    )
    (folder / "settings.toml").write_text(settings)
    (folder / "templates.toml").write_text(TEMPLATES_TOML)
    (folder / "personas.toml").write_text(
        f'[personas.alex]\nname = "{alex}"\nsystem_prompt = "You are {alex}."\n'
        '[personas.sam]\nname = "Sam"\nsystem_prompt = "You are Sam."\n'
    )


VALIDATED_IN: list[str] = []
"""Names of the threads a ``[threads]`` section was validated in."""


@dataclass(slots=True)
class ThreadSettings:
    """A plugin's section that notes which thread validates it."""

    marker: str = ""

    def __post_init__(self) -> None:
        VALIDATED_IN.append(threading.current_thread().name)


class ScriptedPlugin:
    def __init__(self, llm: ScriptedLLM) -> None:
        self.llm = llm

    @hookimpl
    def register_llm_providers(self, register: Callable[..., None]) -> None:
        register("scripted", lambda settings: self.llm)


class ThreadsPlugin:
    @hookimpl
    def register_settings(self, register: Callable[..., None]) -> None:
        register("threads", ThreadSettings)


async def test_refresh_characters_is_for_operators_only(serve, llm, tmp_path):
    folder = tmp_path / "settings"
    _write(folder, "Alex")
    async with serve(settings=load_settings(folder)) as web, web.ws() as socket:
        started = await web.recv(socket)
        assert started["characters"] == [{"id": "alex", "name": "Alex"}]
        _write(folder, "Alexandra")
        for data in ({}, {"admin_token": "wrong-token-0123456789"}, {"admin_token": 5}):
            await web.send(socket, "refresh_characters", **data)
            frame = await web.recv(socket)
            assert (frame["type"], frame["code"]) == ("error", "forbidden"), data
        assert web.runtime.settings.personas["alex"].name == "Alex"
        await web.send(socket, "refresh_characters", admin_token=ADMIN)
        assert await web.recv(socket) == {
            "type": "characters",
            "characters": [{"id": "alex", "name": "Alexandra"}],
            "template_id": "solo",
        }
        await web.send(socket, "user_message", text="who are you?")
        frames = await web.recv_until(socket, "turn_complete")
        assert frames[1]["character_name"] == "Alexandra"
        assert llm.requests[-1].messages[0] == {"role": "system", "content": "You are Alexandra."}
        # A broken folder keeps the current settings and says why.
        (folder / "personas.toml").write_text("[personas.alex]\ntemperature = 'hot'\n")
        await web.send(socket, "refresh_characters", admin_token=ADMIN)
        frame = await web.recv(socket)
        assert (frame["type"], frame["code"]) == ("error", "reload_failed")
        assert frame["message"].startswith("personas.alex.")
        assert web.runtime.settings.personas["alex"].name == "Alexandra"


async def test_the_admin_route_needs_the_operator_token(serve, tmp_path):
    folder = tmp_path / "settings"
    _write(folder, "Alex")
    async with serve(settings=load_settings(folder)) as web:
        _write(folder, "Alexandra")
        missing = await web.http.post(RELOAD)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_token"
        wrong = await web.http.post(RELOAD, headers=web.bearer("nope-nope-nope-nope"))
        assert wrong.status_code == 401
        assert web.runtime.settings.personas["alex"].name == "Alex"
        done = await web.http.post(RELOAD, headers=web.bearer(ADMIN))
        assert done.status_code == 200, done.text
        assert done.json() == {
            "reloaded": True,
            "templates": ["desk", "solo"],
            "personas": ["alex", "sam"],
            "languages": [],
        }
        assert web.runtime.settings.personas["alex"].name == "Alexandra"


async def test_without_an_admin_token_reloading_is_off(serve, tmp_path):
    folder = tmp_path / "settings"
    _write(folder, "Alex", admin=False)
    async with serve(settings=load_settings(folder)) as web, web.ws() as socket:
        await web.recv(socket)
        _write(folder, "Alexandra", admin=False)
        refused = await web.http.post(RELOAD, headers=web.bearer(ADMIN))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        await web.send(socket, "refresh_characters", admin_token=ADMIN)
        frame = await web.recv(socket)
        assert (frame["type"], frame["code"]) == ("error", "forbidden")
        assert web.runtime.settings.personas["alex"].name == "Alex"


async def test_reload_runs_in_a_thread_and_every_plugin_sees_it(llm, tmp_path):
    folder = tmp_path / "settings"
    _write(folder, "Alex", marker="first")
    settings = load_settings(folder)
    plugins = [("test-llm", ScriptedPlugin(llm)), ("threads", ThreadsPlugin())]
    pm = make_plugin_manager((), entry_points=False, extra=plugins)
    runtime = Runtime(settings, pm)
    app = create_app(settings, runtime)
    async with running_server(app) as base, httpx.AsyncClient(base_url=base) as http:
        assert runtime.plugin_settings["threads"].marker == "first"
        VALIDATED_IN.clear()
        # "hello" routes by keyword to alex; after the reload the router asks the LLM.
        _write(folder, "Alex", routing="llm", marker="second")
        reloaded = await http.post(RELOAD, headers={"Authorization": f"Bearer {ADMIN}"})
        assert reloaded.status_code == 200, reloaded.text
        assert VALIDATED_IN, "the plugin's section was not validated again"
        assert threading.main_thread().name not in VALIDATED_IN
        assert runtime.plugin_settings["threads"].marker == "second"
        session = await http.post(SESSION, json={"user_id": "u", "template_id": "desk"})
        session_id = session.json()["session_id"]
        llm.push("sam")
        llm.push("Sam here.")
        reply = await http.post(f"{SESSION}/{session_id}/message", json={"message": "hello"})
        assert reply.status_code == 200, reply.text
        assert (reply.json()["character_id"], reply.json()["response"]) == ("sam", "Sam here.")
    classifier = llm.requests[-2].messages[0]["content"]
    assert classifier.startswith("You route a user's message")
