"""A circuit breaker per provider: skip a provider that keeps failing, probe it after a cool-down.

``closed`` (normal) -> ``open`` after ``threshold`` failures in a row: the provider is skipped for
``cooldown`` seconds -> ``half_open``: exactly one request (the probe) is let through; its success
closes the breaker, its failure opens it for another cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one provider and decides whether to try it."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.on_change = on_change
        self.failures = 0
        self._state = CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (the cool-down is over: a probe may go)."""
        if self._state == OPEN and self.clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether to send a request now; in ``half_open`` only one probe at a time is allowed."""
        if self.threshold <= 0:
            return True
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            self._set(HALF_OPEN)
            return True
        return False

    def success(self) -> None:
        """The provider answered: close the breaker."""
        self.failures = 0
        self._probing = False
        self._set(CLOSED)

    def failure(self) -> None:
        """The provider failed: open after ``threshold`` in a row, or at once after a failed probe."""
        self.failures += 1
        probe_failed = self._probing
        self._probing = False
        if self.threshold > 0 and (probe_failed or self.failures >= self.threshold):
            self._opened_at = self.clock()
            self._set(OPEN)

    def release(self) -> None:
        """A request let through ended without a verdict (cancelled): allow another probe."""
        self._probing = False

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)
