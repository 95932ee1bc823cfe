"""Docs that hold: every operation of the OpenAPI document is described in docs/, and every
``/api/`` or ``/chat`` operation the docs describe exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from litestar.testing import AsyncTestClient

from parley.core.plugins import make_plugin_manager
from parley.core.runtime import Runtime
from parley.server import create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOCUMENTED = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)")


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


async def test_routes_and_docs_agree(make_settings):
    settings = make_settings({"llm": {"provider": "echo"}})
    runtime = Runtime(settings, make_plugin_manager((), entry_points=False))
    async with AsyncTestClient(create_app(settings, runtime)) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    served = {
        (method.upper(), _normal(path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    documented = {(method, _normal(path)) for method, path in DOCUMENTED.findall(text)}
    assert served - documented == set(), "operations the docs do not describe"
    api = {(m, p) for m, p in documented if p.startswith(("/api/", "/chat"))}
    assert api - served == set(), "documented operations that do not exist"


def _web_sources() -> list[ast.Module]:
    folder = Path(__file__).resolve().parents[1] / "parley" / "adapters" / "web"
    return [ast.parse(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.py"))]


def _server_frame_types() -> set[str]:
    """Every ``{"type": "<literal>", ...}`` the web adapter builds."""
    found = set()
    for tree in _web_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "type"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        found.add(value.value)
    return found


def _client_frame_types() -> set[str]:
    """The keys of the socket's ``self.handlers`` table (the frames a client may send)."""
    for tree in _web_sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.AnnAssign | ast.Assign)
                and "self.handlers" in ast.unparse(node)
                and isinstance(node.value, ast.Dict)
            ):
                return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError("the socket's handlers table was not found")


def test_frames_and_the_protocol_doc_agree():
    doc = (DOCS / "protocol.md").read_text(encoding="utf-8")
    client_table = doc.split("### Client frames", 1)[1].split("\n### ", 1)[0]
    in_table = set(re.findall(r"^\| `(\w+)` \|", client_table, flags=re.MULTILINE))
    assert in_table == _client_frame_types()
    named = set(re.findall(r"`(\w+)`", doc)) | set(re.findall(r'"type": "(\w+)"', doc))
    assert _server_frame_types() - named == set(), "frames the protocol doc does not name"
    assert len(_server_frame_types()) > 10  # the walk sees the frames


def test_every_parley_name_in_the_docs_exists():
    """``parley.x.y`` written in README or docs/ imports (a module) or resolves (an attribute)."""
    import importlib

    text = "\n".join(
        p.read_text(encoding="utf-8") for p in [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    )
    # Python names only: a module of the package or an exported name after ``parley.`` (span
    # attributes and logger names such as ``parley.turn`` are not Python names).
    package = Path(__file__).resolve().parents[1] / "parley"
    roots = {p.stem for p in package.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    roots |= set(importlib.import_module("parley").__all__)
    names = {
        n for n in re.findall(r"\bparley(?:\.[A-Za-z_]\w*)+", text) if n.split(".")[1] in roots
    }
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    found = getattr(found, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == []
    assert len(names) > 10
