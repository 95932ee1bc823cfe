"""The one retry policy (parley.core.retry) and the one signature scheme (parley.core.signing)."""

from __future__ import annotations

import logging

import pytest

from parley.core.retry import retrying
from parley.core.signing import sign, verify


class Flaky(Exception):
    def __init__(self, retry: bool | float = True) -> None:
        super().__init__(f"flaky ({retry})")
        self.retry = retry


async def _run(failures: list[Flaky], retries: int | None, **kwargs) -> tuple[int, str]:
    calls = 0
    async for attempt in retrying(
        "the call", on=lambda e: isinstance(e, Flaky) and e.retry, retries=retries, **kwargs
    ):
        with attempt:
            calls += 1
            if failures:
                raise failures.pop(0)
    return calls, "ok"


async def test_retries_then_succeeds_and_logs_each_retry(caplog):
    caplog.set_level(logging.WARNING, logger="parley.core.retry")
    assert await _run([Flaky(), Flaky()], 2, backoff=0, max_backoff=0) == (3, "ok")
    assert [r.getMessage() for r in caplog.records if r.name == "parley.core.retry"] == [
        "the call: flaky (True); retry 1/2",
        "the call: flaky (True); retry 2/2",
    ]


async def test_gives_up_after_the_retries_with_the_last_error(caplog):
    failures = [Flaky(), Flaky(), Flaky(), Flaky()]
    with pytest.raises(Flaky):
        await _run(failures, 2, backoff=0, max_backoff=0)
    assert len(failures) == 1  # three attempts: the first and two retries
    retries = [r for r in caplog.records if r.name == "parley.core.retry"]
    assert len(retries) == 2  # the final failure is not announced as a retry


async def test_a_final_error_is_raised_at_once():
    failures = [Flaky(retry=False), Flaky()]
    with pytest.raises(Flaky, match="False"):
        await _run(failures, 5, backoff=0, max_backoff=0)
    assert len(failures) == 1
    with pytest.raises(KeyError):  # not matched by ``on`` at all
        async for attempt in retrying("x", on=lambda e: False, retries=3, backoff=0, max_backoff=0):
            with attempt:
                raise KeyError("no")


@pytest.fixture
def planned_waits():
    """The waits stamina schedules, seen through its own instrumentation hooks."""
    from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

    waits: list[float] = []
    before = get_on_retry_hooks()
    set_on_retry_hooks([lambda details: waits.append(details.wait_for)])
    yield waits
    set_on_retry_hooks(before)


async def test_backoff_doubles_up_to_the_cap(planned_waits):
    await _run([Flaky()] * 4, 4, backoff=0.004, max_backoff=0.02)
    low = [0.004, 0.008, 0.016, 0.02]
    assert len(planned_waits) == 4
    for wait, floor in zip(planned_waits, low, strict=True):
        # jitter: at most a quarter of ``backoff``; never past the cap
        assert floor - 1e-9 <= wait <= min(floor + 0.001, 0.02) + 1e-9


async def test_a_delay_returned_by_on_wins(planned_waits):
    await _run([Flaky(retry=0.003)], 1, backoff=5, max_backoff=5)  # a Retry-After: 3 ms, not 5 s
    assert planned_waits == [0.003]


async def test_without_a_limit_it_retries_until_success():
    assert await _run([Flaky()] * 12, None, backoff=0, max_backoff=0) == (13, "ok")


def test_signatures():
    body = b'{"event":"turn_completed"}'
    signature = sign("s3cret", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("s3cret", body, signature)
    assert verify("s3cret", body, " sha256=" + signature[7:].upper() + " ")
    assert not verify("s3cret", body + b" ", signature)
    assert not verify("other", body, signature)
    assert not verify("s3cret", body, signature[7:])  # the prefix is required
    assert not verify("", body, sign("", body))  # no secret, no trust
    assert not verify("s3cret", body, None)
    assert not verify("s3cret", body, "sha256=é")
