"""Silence in a live conversation: the nudge prompt, then the timeout prompt that ends it.

The template's ``nudge_after`` seconds of silence after the last thing that happened (the
assistant finished, or the user sent or said something) make the assistant say the language's
``prompts.nudge``; ``timeout_after`` more seconds make it say ``prompts.timeout`` and end the
conversation with reason ``timeout``. Either is off when unset (``timeout_after`` alone counts
from the start of the silence). The clock only runs while the conversation is idle (no reply
running, nothing queued) and someone who wants prompts is attached; any user activity starts
over from the nudge. The owner (:class:`~parley.core.conversation.LiveConversation`) queues the
prompts as ordinary commands, so they never overlap a reply.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol

from parley.core.config import Template

__all__ = ["DONE", "NUDGE", "TIMEOUT", "Silence", "SilenceOwner"]

NUDGE, TIMEOUT, DONE = 0, 1, 2
"""Phases: the next thing silence leads to."""


class SilenceOwner(Protocol):
    """What the timer needs from its conversation."""

    def silence_template(self) -> Template | None:
        """The template whose ``nudge_after``/``timeout_after`` apply; None: no prompts now."""
        ...

    def silence_prompt(self, phase: int, generation: int) -> None:
        """Queue the prompt of ``phase`` (it checks :meth:`Silence.current` when it runs)."""
        ...


class Silence:
    """The silence timer of one live conversation."""

    def __init__(self, owner: SilenceOwner) -> None:
        self.owner = owner
        self.phase = NUDGE
        self.generation = 0
        """Counts user activity; a prompt queued before the latest activity is dropped."""
        self.idle_now = False
        self.since = datetime.now(UTC)
        """When the silence (or the current stretch of it) began."""
        self._timer: asyncio.TimerHandle | None = None

    def reset(self) -> None:
        """Silence leads to the nudge again (a conversation attached, the user did something)."""
        self.phase = NUDGE
        self.generation += 1
        self.since = datetime.now(UTC)
        self._reschedule()

    def touch(self) -> None:
        """The user did something (a message, speech): start over from the nudge."""
        self.reset()

    def idle(self) -> None:
        """Nothing is running or queued: let the silence count."""
        if not self.idle_now:
            self.since = datetime.now(UTC)
        self.idle_now = True
        self._reschedule()

    def busy(self) -> None:
        """Something is running: the silence does not count."""
        self.idle_now = False
        self._cancel()

    def stop(self) -> None:
        """Nobody wants prompts any more."""
        self.idle_now = False
        self._cancel()

    def current(self, phase: int, generation: int) -> bool:
        """Whether a prompt queued for (``phase``, ``generation``) is still due; if so the timer
        moves on to the next phase."""
        if generation != self.generation or phase != self.phase:
            return False  # the user spoke up since
        self.phase = TIMEOUT if phase == NUDGE else DONE
        return True

    def delay(self) -> float | None:
        """Seconds of silence before the next prompt, or None when silence leads to nothing."""
        template = self.owner.silence_template()
        if template is None:
            return None
        nudge, timeout = template.nudge_after, template.timeout_after
        if self.phase == NUDGE:
            if nudge is not None:
                return nudge
            if timeout is not None:
                self.phase = TIMEOUT  # no nudge: the timeout counts from the start of the silence
                return timeout
            return None
        if self.phase == TIMEOUT:
            return timeout
        return None

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reschedule(self) -> None:
        self._cancel()
        if not self.idle_now:
            return
        delay = self.delay()
        if delay is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(delay, self._fire, self.generation)

    def _fire(self, generation: int) -> None:
        self._timer = None
        if generation != self.generation or not self.idle_now:
            return
        self.owner.silence_prompt(self.phase, generation)
