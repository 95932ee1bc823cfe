"""Fake LLM and TTS servers with set latency, speaking the real wire formats (one process each).

- LLM: OpenAI's ``POST /v1/chat/completions`` with ``stream: true`` (SSE chunks, the usage chunk,
  ``[DONE]``): ``first_token`` seconds after the request, then one word every ``per_token``.
  Words come the way tokenizers send them: the space leads (``"Sure,"``, ``" here"`` ...).
- TTS: ElevenLabs' ``POST /v1/text-to-speech/{voice}/stream``: the first byte after
  ``first_byte + per_char * len(text)`` seconds, then 640 bytes of PCM every ``chunk_every``.

``GET /events`` returns (and forgets) when each request arrived, the first sentence's last word,
the word after it and the last word left, and the TTS's first byte left (wall clock), so a
benchmark can tell where a turn's time went.

Both Parley (``parley serve`` with the openai and elevenlabs providers) and the baseline
(``bench/baseline.py``) talk to the same fakes over loopback HTTP.

    python bench/fakes.py --port 9001 --first-token 0.2 --per-token 0.01 --words 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

from aiohttp import web

REPLY = (
    "Sure, here is a quick plan for your morning. Start with a glass of water and five minutes "
    "of stretching. Then write down the three things that matter most today. Do the hardest one "
    "first, before you open your email. Take a short walk at noon to clear your head. That is "
    "all it takes to begin."
)
"""57 words in 6 sentences; the first sentence has 9 words."""


@dataclass(frozen=True)
class Pace:
    """How fast the fakes answer (seconds)."""

    first_token: float = 0.2
    per_token: float = 0.01
    words: int = 0
    """Words of :data:`REPLY` to send (0: all)."""
    first_byte: float = 0.1
    per_char: float = 0.0005
    chunk_every: float = 0.02

    def reply_words(self) -> list[str]:
        """The reply as the LLM streams it."""
        words = REPLY.split(" ")
        words = words[: self.words] if self.words else words
        return [word if i == 0 else " " + word for i, word in enumerate(words)]

    def generation_time(self) -> float:
        """From the request to the last word, with no overhead at all."""
        return self.first_token + (len(self.reply_words()) - 1) * self.per_token

    def first_sentence(self) -> tuple[str, float]:
        """The first sentence and when its last word leaves the LLM (from the request)."""
        words = self.reply_words()
        for i, word in enumerate(words):
            if word.rstrip().endswith((".", "!", "?")):
                return "".join(words[: i + 1]).strip(), self.first_token + i * self.per_token
        return "".join(words).strip(), self.generation_time()

    def ideal_first_audio(self) -> float:
        """First sentence complete + the TTS's first byte for it: no framework at all."""
        sentence, done = self.first_sentence()
        return done + self.first_byte + self.per_char * len(sentence)


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def make_app(pace: Pace) -> web.Application:
    """The aiohttp application serving both fakes."""
    words = pace.reply_words()
    sentence_end = len(pace.first_sentence()[0].split()) - 1
    events: list[dict] = []
    """What happened when (wall clock), for the benchmark's breakdown of a turn."""

    def note(kind: str) -> None:
        events.append({"kind": kind, "t": time.time()})

    async def completions(request: web.Request) -> web.StreamResponse:
        note("llm_request")
        body = await request.json()
        model = body.get("model", "fake")
        if not body.get("stream"):
            await asyncio.sleep(pace.generation_time())
            text = "".join(words)
            return web.json_response(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(words)},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(pace.first_token)
        for i, word in enumerate(words):
            if i:
                await asyncio.sleep(pace.per_token)
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
            await response.write(_chunk(model, delta))
            if i == sentence_end:
                note("llm_first_sentence")
            elif i == sentence_end + 1:
                note("llm_next_word")  # its leading space makes the first sentence's end certain
        note("llm_last_word")
        await response.write(_chunk(model, {}, "stop"))
        usage = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": len(words),
                "total_tokens": 10 + len(words),
            },
        }
        await response.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    async def speech(request: web.Request) -> web.StreamResponse:
        note("tts_request")
        body = await request.json()
        text = str(body.get("text", ""))
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        await asyncio.sleep(pace.first_byte + pace.per_char * len(text))
        for i in range(max(1, len(text) // 20)):
            if i:
                await asyncio.sleep(pace.chunk_every)
            await response.write(b"\0" * 640)
            if not i:
                note("tts_first_byte")
        await response.write_eof()
        return response

    async def timeline(request: web.Request) -> web.Response:
        """The events noted since the last call (and forget them)."""
        out = list(events)
        events.clear()
        return web.json_response(out)

    app = web.Application()
    app.router.add_get("/events", timeline)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/text-to-speech/{voice}/stream", speech)
    return app


def main() -> None:
    """Serve the fakes until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    for name, default in vars(Pace()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    args = vars(parser.parse_args())
    port = args.pop("port")
    web.run_app(make_app(Pace(**args)), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
