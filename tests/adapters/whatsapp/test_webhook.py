"""The webhook: verification handshake, signatures, statuses, size cap, de-duplication."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from parley.cli import main
from parley.core import store
from parley.core.config import SettingsError
from parley.core.loading import settings_from_dict
from parley.core.runtime import Runtime


async def test_verification_handshake(serve, meta):
    async with serve() as served:
        url = f"{served.url}{meta.WEBHOOK}"
        ok = await served.http.get(
            url,
            params={
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": meta.VERIFY,
            },
        )
        assert ok.status_code == 200
        assert ok.text == "1158201444"
        assert ok.headers["content-type"].startswith("text/plain")
        wrong_token = await served.http.get(
            url,
            params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"},
        )
        wrong_mode = await served.http.get(
            url,
            params={
                "hub.mode": "unsubscribe",
                "hub.challenge": "1",
                "hub.verify_token": meta.VERIFY,
            },
        )
        bare = await served.http.get(url)
        assert [r.status_code for r in (wrong_token, wrong_mode, bare)] == [403, 403, 403]
        assert "1" not in wrong_token.text.split()


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "sha256=" + "0" * 64,
        "sha1=abc",
        "garbage",
        "wrong-secret",
        "other-body",
    ],
)
async def test_bad_signature_is_refused_and_nothing_is_stored(
    serve, meta, graph, providers, signature
):
    payload = meta.text_delivery("wamid.SIG1", "hello")
    if signature == "wrong-secret":
        signature = meta.sign(json.dumps(payload).encode(), "another-secret")
    elif signature == "other-body":
        signature = meta.sign(b'{"object": "whatsapp_business_account"}')
    async with serve() as served:
        response = await served.deliver(payload, signature=signature)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"
        await served.idle()
        assert await store.pending_messages("whatsapp") == []
        ann = await store.get_or_create_user("whatsapp", meta.ANN)
        assert ann.display_name is None  # the sender was never seen
        assert await store.list_conversations(ann.id) == []
    assert graph.calls == []
    assert providers.llm.requests == []


async def test_right_signature_is_accepted(serve, meta, graph):
    async with serve() as served:
        response = await served.deliver(meta.text_delivery("wamid.SIG2", "hello"))
        assert response.status_code == 200
        assert response.json() == {"received": 1, "stored": 1}
        await served.idle()
    assert graph.texts(meta.ANN) == ["Hi there!", "ok"]


async def test_status_callbacks_are_ignored(serve, meta, graph, providers):
    async with serve() as served:
        for status in ("sent", "delivered", "read", "failed"):
            response = await served.deliver(meta.status_delivery("wamid.out.1", status))
            assert response.status_code == 200
            assert response.json() == {"received": 0, "stored": 0}
        await served.idle()
        assert await store.pending_messages("whatsapp") == []
    assert graph.calls == []
    assert providers.llm.requests == []


async def test_ten_concurrent_deliveries_are_answered_once(serve, meta, graph, providers):
    payload = meta.text_delivery("wamid.DUP1", "are you there?")
    async with serve() as served:
        responses = await asyncio.gather(*(served.deliver(payload) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        assert sum(r.json()["stored"] for r in responses) == 1
        await served.idle()
        # Meta repeats it later: still nothing new.
        again = await served.deliver(payload)
        assert again.json()["stored"] == 0
        await served.idle()
        user = await store.get_or_create_user("whatsapp", meta.ANN)
        conversation = await store.find_open_conversation(user.id, "whatsapp")
        messages = await store.list_messages(conversation.id)
        assert [(m.role, m.content) for m in messages] == [
            ("assistant", "Hi there!"),
            ("user", "are you there?"),
            ("assistant", "ok"),
        ]
    assert len(providers.llm.requests) == 1
    assert graph.texts() == ["Hi there!", "ok"]
    assert len(graph.of("read")) == 1


async def test_other_numbers_are_skipped(serve, meta, graph):
    """(Images, stickers and the like are stored and answered: test_meta_examples.py.)"""
    other = meta.value([meta.text_message("wamid.OTHER", "hi")], [meta.contact(meta.ANN, "Ann")])
    other["metadata"]["phone_number_id"] = "999"
    async with serve() as served:
        response = await served.deliver(meta.envelope(other))
        assert response.json() == {"received": 0, "stored": 0}
        bad_json = b"{not json"
        broken = await served.deliver(bad_json, signature=meta.sign(bad_json))
        assert broken.status_code == 400
        await served.idle()
    assert graph.calls == []


async def test_body_size_is_capped(serve, meta):
    async with serve(max_body_bytes=2048) as served:
        payload = meta.text_delivery("wamid.BIG", "x" * 4000)
        response = await served.deliver(payload)
        assert response.status_code == 413
        assert await store.pending_messages("whatsapp") == []


def _collect(raw):
    Runtime(settings_from_dict(raw)).collect()


def test_settings_are_validated():
    with pytest.raises(SettingsError, match=r"^whatsapp\.reply_voice: .*auto, always, never"):
        _collect({"whatsapp": {"reply_voice": "sometimes"}})
    with pytest.raises(SettingsError, match=r"^whatsapp\.app_secret: .*enabled"):
        _collect({"whatsapp": {"enabled": True, "verify_token": "v"}})
    with pytest.raises(SettingsError, match=r"^whatsapp\.template: unknown template 'nope'"):
        _collect(
            {
                "whatsapp": {
                    "enabled": True,
                    "verify_token": "v",
                    "app_secret": "s",
                    "access_token": "t",
                    "phone_number_id": "1",
                    "template": "nope",
                }
            }
        )
    runtime = Runtime(settings_from_dict({}))
    runtime.collect()
    assert "whatsapp" in runtime.adapter_factories and "whatsapp" not in runtime.adapters


def test_bad_whatsapp_settings_stop_the_cli_with_exit_code_2(tmp_path):
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "settings.toml").write_text('[whatsapp]\nenabled = true\nverify_token = "v"\n')
    for command in ("plugins", "serve"):
        result = CliRunner().invoke(main, [command, "--settings", str(folder)])
        assert result.exit_code == 2
        assert result.stderr.startswith("settings error: whatsapp.app_secret")
        assert result.exception is None or isinstance(result.exception, SystemExit)
