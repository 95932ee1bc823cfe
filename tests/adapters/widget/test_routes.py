"""``GET /widget.js`` and ``GET /`` over plain HTTP: content types, caching, the template picker."""

from __future__ import annotations

import html
import re

from litestar.testing import AsyncTestClient

from parley.adapters.widget.plugin import MODULES, MODULES_DIR, STATIC, assemble_widget
from parley.core.plugins import DEFAULT_PLUGINS, make_plugin_manager
from parley.core.runtime import Runtime
from parley.server import create_app

from .conftest import SETTINGS, FakeProviders, Fakes


def _client(make_settings, extra=None):
    settings = make_settings({**SETTINGS, **(extra or {})})
    pm = make_plugin_manager((), entry_points=False, extra=[("fakes", FakeProviders(Fakes()))])
    return AsyncTestClient(create_app(settings, Runtime(settings, pm)))


def test_widget_is_a_built_in_plugin_and_ships_its_files():
    assert ("widget", "parley.adapters.widget.plugin") in DEFAULT_PLUGINS
    assert "demo.html" in {p.name for p in STATIC.iterdir()}
    assert sorted(MODULES) == sorted(p.name for p in MODULES_DIR.glob("*.js"))  # none left out


async def test_widget_js_is_cacheable_javascript(make_settings):
    async with _client(make_settings) as client:
        response = await client.get("/widget.js")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.text == assemble_widget().decode()
        etag = response.headers["etag"]
        again = await client.get("/widget.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        changed = await client.get("/widget.js", headers={"If-None-Match": '"other"'})
        assert changed.status_code == 200


async def test_widget_js_loads_nothing_from_elsewhere(make_settings):
    async with _client(make_settings) as client:
        source = (await client.get("/widget.js")).text
    urls = set(re.findall(r"https?://[^\s\"'`)]+", source))
    assert urls <= {"https://HOST/widget.js", "http://www.w3.org/2000/svg"}
    assert "import " not in source  # a classic script: no modules, no build step


async def test_demo_page_embeds_the_widget_with_a_template_picker(make_settings):
    async with _client(make_settings) as client:
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = response.text
        assert '<script src="/widget.js" data-template="solo"' in page
        assert 'data-voice="true"' in page  # STT and TTS are configured
        options = re.findall(r'<option value="([^"]+)"( selected)?>([^<]*)</option>', page)
        assert [(v, s) for v, s, _ in options] == [("solo", " selected"), ("duo", "")]
        assert html.unescape(options[1][2]) == "Duo (Maya, Leo)"
        assert "/schema" in page and "/health" in page

        duo = (await client.get("/", params={"template": "duo"})).text
        assert 'data-template="duo"' in duo
        assert '<option value="duo" selected>' in duo
        # An unknown template falls back to the default one; nothing is echoed unescaped.
        odd = (await client.get("/", params={"template": '"><script>x</script>'})).text
        assert 'data-template="solo"' in odd
        assert "<script>x</script>" not in odd


async def test_demo_page_without_voice_providers(make_settings):
    async with _client(make_settings, {"stt": {"provider": ""}, "tts": {"provider": ""}}) as client:
        page = (await client.get("/")).text
        assert 'data-voice="false"' in page
        assert "set stt.provider and tts.provider" in page


async def test_routes_stay_out_of_the_openapi_schema(make_settings):
    async with _client(make_settings) as client:
        paths = (await client.get("/schema/openapi.json")).json()["paths"]
        assert "/widget.js" not in paths
        assert "/" not in paths


async def test_widget_js_is_one_script_of_the_modules_with_no_test_hooks(make_settings):
    async with _client(make_settings) as client:
        source = (await client.get("/widget.js")).text
    assert source.startswith('(() => {\n"use strict";') and source.endswith("})();\n")
    positions = [source.index(f"// ---- {name}\n") for name in MODULES]
    assert positions == sorted(positions)
    for name in MODULES:
        assert (MODULES_DIR / name).read_text() in source
    assert "__test" not in source  # test hooks live in tests/adapters/widget/hooks.js
