"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

from parley.core.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_failures_in_a_row_and_one_probe_closes_it():
    clock, changes = Clock(), []
    breaker = CircuitBreaker(3, 30, clock=clock, on_change=changes.append)
    breaker.failure()
    breaker.success()  # a success in between: the count starts again
    breaker.failure()
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert changes == ["open", "half_open", "closed"]


def test_a_failed_probe_opens_it_again_for_a_whole_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(2, 10, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 10
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_cancelled_probe_lets_another_through():
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_threshold_zero_never_opens():
    breaker = CircuitBreaker(0, 5)
    for _ in range(10):
        breaker.failure()
    assert breaker.allow() and breaker.state == "closed"


async def test_a_chain_claims_a_probe_only_for_the_provider_it_tries():
    from parley.core.config import ModelSettings
    from parley.core.failover import FailoverLLM
    from parley.core.failover_settings import FailoverSettings, Member
    from parley.core.providers import LLMRequest
    from parley.core.telemetry import Telemetry
    from parley.testing import ScriptedLLM

    clock = Clock()
    members = [
        Member(label, ScriptedLLM(), CircuitBreaker(1, 10, clock=clock))
        for label in ("primary", "fallback")
    ]
    members[1].breaker.failure()  # the fallback failed once: open
    clock.now += 10  # its cool-down is over: the next request to it is the probe
    chain = FailoverLLM(members, Telemetry(), FailoverSettings())
    chunks = [c async for c in chain.stream(LLMRequest(messages=[], model=ModelSettings()))]
    assert "".join(c.text for c in chunks) == "ok"  # the primary answered
    assert members[1].breaker.allow()  # the fallback's probe is still to be taken
