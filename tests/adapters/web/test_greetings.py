"""Greetings per template (a string or a table by language; unset: the language's prompts.start;
"": none), and channels that turn them off (web.greeting)."""

from __future__ import annotations

SESSION = "/api/v1/chatbot/session"
TEMPLATES = {
    "templates": {
        "chatty": {
            "personas": ["alex"],
            "greeting": {"en": "Welcome to chatty!", "de": "Willkommen!"},
        },
        "plain": {"personas": ["alex"], "greeting": "Hello, plainly."},
        "quiet": {"personas": ["alex"], "greeting": ""},
    },
    "languages": {"de": {"prompts": {"start": "Hallo!"}}},
}


async def _greeting(web, template_id: str, language: str | None = None) -> str | None:
    body = {"user_id": "u", "template_id": template_id}
    if language:
        body["language"] = language
    response = await web.http.post(SESSION, json=body)
    assert response.status_code == 200, response.text
    return response.json()["greeting"]


async def test_each_template_greets_its_own_way(serve):
    async with serve(TEMPLATES) as web:
        assert await _greeting(web, "solo") == "Hi there!"  # the language pack's prompts.start
        assert await _greeting(web, "chatty") == "Welcome to chatty!"
        assert await _greeting(web, "chatty", "de") == "Willkommen!"
        assert await _greeting(web, "chatty", "fr") == "Welcome to chatty!"  # en, then any
        assert await _greeting(web, "plain", "de") == "Hello, plainly."
        assert await _greeting(web, "quiet") is None
        async with web.ws(template_id="chatty") as socket:
            frames = await web.start_chat(socket)
        assert frames[-1]["text"] == "Welcome to chatty!"


async def test_a_channel_can_turn_greetings_off(serve):
    async with serve({**TEMPLATES, "web": {"rate_limit": 0, "greeting": False}}) as web:
        assert await _greeting(web, "chatty") is None
        assert await _greeting(web, "solo") is None
        async with web.ws() as socket:
            started = await web.recv(socket)
            assert started["type"] == "conversation_started"
            await web.send(socket, "user_message", text="hi")
            frames = await web.recv_until(socket, "turn_complete")
        assert [f["type"] for f in frames if f["type"] == "message_complete"] == [
            "message_complete"
        ]
        chat = await web.http.post("/chat/", json={"content": "hello"})
        conversation_id = chat.json()["conversation_id"]
        history = await web.http.get(f"/api/v1/conversations/{conversation_id}/messages")
        roles = [m["role"] for m in history.json()["messages"]]
        assert roles == ["user", "assistant"] * 2  # the socket's turn, then /chat/'s: no greeting
