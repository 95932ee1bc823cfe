"""Retry with exponential backoff and jitter: one policy for every outbound call, through stamina.

Used by the WhatsApp Graph client, the ``notify`` plugin, the Telegram webhook set-up and the
Telegram Bot API's 429 flood control (waiting the server's ``retry_after``). The vendor SDKs
(openai, deepgram, elevenlabs) retry inside themselves with ``max_retries``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable

import stamina

__all__ = ["retrying"]

log = logging.getLogger(__name__)


def retrying(
    what: str,
    *,
    on: Callable[[Exception], bool | float],
    retries: int | None,
    backoff: float,
    max_backoff: float,
    describe: Callable[[Exception], str] = str,
    logger: logging.Logger = log,
) -> AsyncIterable[stamina.Attempt]:
    """The attempts of a block: ``async for attempt in retrying(...): with attempt: ...``.

    ``on(exc)`` decides: True retries, False raises ``exc`` at once, a number of seconds retries
    after exactly that long (a ``Retry-After``). ``retries`` is how many retries follow the first
    attempt (None: until it succeeds). The first retry waits ``backoff`` seconds plus up to a
    quarter more of jitter, each later one twice as long, never more than ``max_backoff``. There
    is no overall deadline: each request has its own timeout. Each retry is logged as a warning
    (``<what>: <describe(exc)>; retry n/m``); when the retries run out the last exception is
    raised.
    """
    failures = 0

    def decide(exc: Exception) -> bool | float:
        nonlocal failures
        verdict = on(exc)
        failures += 1
        if verdict is not False and (retries is None or failures <= retries):
            of = "" if retries is None else f"/{retries}"
            logger.warning("%s: %s; retry %d%s", what, describe(exc), failures, of)
        return verdict

    return stamina.retry_context(  # type: ignore[return-value]  (it iterates both ways)
        on=decide,
        attempts=None if retries is None else retries + 1,
        timeout=None,
        wait_initial=backoff,
        wait_max=max(max_backoff, backoff),
        wait_jitter=backoff / 4,
        wait_exp_base=2,
    )
