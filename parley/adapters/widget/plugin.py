"""Built-in plugin ``widget``: the website widget (``GET /widget.js``) and a demo page (``GET /``).

The widget is plain JavaScript kept in modules of one concern each (``js/``, in :data:`MODULES`
order) and served as ONE classic script: the server joins them inside one function scope when it
first serves it (no build step, no bundler). It speaks the ``/ws`` protocol of the web adapter
(docs/protocol.md); the demo page embeds it with a template picker. docs/widget.md tells site
owners how to embed it.
"""

from __future__ import annotations

import functools
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from string import Template as TextTemplate
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from parley.core.hookspecs import hookimpl
from parley.core.plugin_context import PluginContext
from parley.core.providers import LiveSTTProvider

__all__ = ["demo_page", "register_routes", "widget_js"]

STATIC = Path(__file__).with_name("static")
MODULES_DIR = Path(__file__).with_name("js")

MODULES = (
    "base.js",  # constants, visible strings, helpers
    "link.js",  # connection and resume
    "player.js",  # playback of spoken replies
    "mic.js",  # audio capture
    "styles.js",  # CSS
    "view.js",  # rendering (class WidgetView)
    "conversation.js",  # the conversation's frames (class WidgetConversation)
    "voice.js",  # voice in and out (class Widget)
    "api.js",  # window.Parley
)
"""The widget's modules, in the order they are joined (later ones use earlier ones' names)."""

WIDGET_CACHE = "public, max-age=3600"
"""Browsers and CDNs may keep the script an hour, then revalidate it with its ETag."""


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file's bytes and strong ETag."""

    body: bytes
    etag: str


def assemble_widget() -> bytes:
    """The widget's modules joined into one classic script with one private scope."""
    parts = [(MODULES_DIR / name).read_text(encoding="utf-8") for name in MODULES]
    body = "\n".join(f"// ---- {name}\n{part}" for name, part in zip(MODULES, parts, strict=True))
    return f'(() => {{\n"use strict";\n\n{body}}})();\n'.encode()


def _etagged(body: bytes) -> Asset:
    return Asset(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@functools.cache
def _asset(name: str) -> Asset:
    if name == "widget.js":
        return _etagged(assemble_widget())
    return _etagged((STATIC / name).read_bytes())


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


@get("/widget.js", include_in_schema=False, sync_to_thread=False)
def widget_js(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The widget script: plain JavaScript, cacheable, embeddable from any site."""
    asset = _asset("widget.js")
    headers = {
        "Cache-Control": WIDGET_CACHE,
        "ETag": asset.etag,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type="text/javascript", headers=headers)


def _template_label(settings: Any, template: Any) -> str:
    names = [settings.personas[p].name for p in template.personas if p in settings.personas]
    label = template.name or template.id
    return f"{label} ({', '.join(names)})" if names else label


def render_demo(
    settings: Any, *, base_url: str, template: str | None, lang: str | None, voice: bool
) -> str:
    """The demo page's HTML for the chosen template (the default one when unknown)."""
    templates = settings.templates
    chosen = template if template in templates else settings.conversation.default_template
    if chosen not in templates and templates:
        chosen = next(iter(templates))
    options = "\n".join(
        f'          <option value="{html.escape(tid)}"{" selected" if tid == chosen else ""}>'
        f"{html.escape(_template_label(settings, t))}</option>"
        for tid, t in templates.items()
    )
    current = templates.get(chosen)
    multi = current is not None and len(current.personas) > 1
    hint = (
        "Several characters answer here: name one (“@Maya …”) to talk to that character."
        if multi
        else "One assistant answers; pick a template with several characters to see them talk."
    )
    title = f"Chat: {current.name or chosen}" if current else "Chat"
    lang = lang if lang and lang in settings.languages else None
    lang_attr = f' data-lang="{html.escape(lang)}"' if lang else ""
    snippet = (
        f'<script src="{base_url}/widget.js"\n'
        f'        data-template="{chosen}" data-title="{title}"{lang_attr} async></script>'
    )
    page = TextTemplate(_asset("demo.html").body.decode())
    return page.substitute(
        options=options,
        template=html.escape(chosen or ""),
        title=html.escape(title),
        template_hint=html.escape(hint),
        voice="true" if voice else "false",
        voice_hint=html.escape(
            "Voice is on: press the microphone button in the chat panel."
            if voice
            else "Voice is off: set stt.provider and tts.provider (Deepgram, ElevenLabs) to talk."
        ),
        lang_attr=lang_attr,
        snippet=html.escape(snippet),
    )


@get("/", include_in_schema=False)
async def demo_page(
    request: Request[Any, Any, Any],
    context: NamedDependency[PluginContext],
    template: FromQuery[str | None] = None,
    lang: FromQuery[str | None] = None,
) -> Response[str]:
    """The demo page: the widget embedded, with a template picker."""
    # The microphone streams to a live STT session; replies are spoken by the TTS provider.
    voice = isinstance(context.stt, LiveSTTProvider) and context.tts is not None
    base_url = str(request.base_url).rstrip("/")
    body = render_demo(
        context.settings, base_url=base_url, template=template, lang=lang, voice=voice
    )
    return Response(body, media_type="text/html", headers={"Cache-Control": "no-cache"})


@hookimpl
def register_routes(register: Any) -> None:
    """Mount ``GET /widget.js`` and ``GET /``."""
    register(widget_js)
    register(demo_page)
