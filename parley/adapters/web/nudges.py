"""Silence on a socket: the nudge prompt, then the timeout prompt that ends the conversation.

The template's ``nudge_after`` seconds of silence after the last thing that happened (the
assistant finished speaking, or the user sent or said something) make the assistant say the
language's ``prompts.nudge``; ``timeout_after`` more seconds make it say ``prompts.timeout`` and
end the conversation with reason ``timeout``. Either is off when unset (``timeout_after`` alone
counts from the start of the silence). The clock only runs while the socket is idle: no reply
streaming, nothing queued. Any user activity starts over from the nudge.

Prompts run as ordinary jobs of the socket's queue, so they never overlap a reply.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from parley.core.engine import EngineError

if TYPE_CHECKING:
    from parley.adapters.web.ws import WebSession

__all__ = ["Nudges"]

NUDGE, TIMEOUT, DONE = 0, 1, 2
"""Phases: the next thing silence leads to."""


class Nudges:
    """The silence timer of one socket."""

    def __init__(self, session: WebSession) -> None:
        self.session = session
        self.phase = NUDGE
        self.generation = 0
        """Counts user activity; a prompt queued before the latest activity is dropped."""
        self.idle_now = False
        self._timer: asyncio.TimerHandle | None = None

    # -- what the session reports ----------------------------------------------------------

    def reset(self) -> None:
        """A conversation (re)started on the socket: silence leads to the nudge again."""
        self.phase = NUDGE
        self.generation += 1
        self._reschedule()

    def touch(self) -> None:
        """The user did something (a message, speech): start over from the nudge."""
        self.reset()

    def idle(self) -> None:
        """Nothing is running or queued: let the silence count."""
        self.idle_now = True
        self._reschedule()

    def busy(self) -> None:
        """A job is running: the silence does not count."""
        self.idle_now = False
        self._cancel()

    def stop(self) -> None:
        """The socket is closing."""
        self.idle_now = False
        self.phase = DONE
        self._cancel()

    # -- timer -------------------------------------------------------------------------------

    def delay(self) -> float | None:
        """Seconds of silence before the next prompt, or None when silence leads to nothing."""
        conversation = self.session.conversation
        if conversation is None or not self.session.conversation_open:
            return None
        try:
            template = self.session.engine.template(conversation.template_id)
        except EngineError:
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
        phase = self.phase
        self.session.queue_prompt(lambda: self.say(phase, generation))

    # -- the prompt job -------------------------------------------------------------------------

    async def say(self, phase: int, generation: int) -> None:
        """Say the nudge or the timeout prompt (a job of the socket's queue)."""
        if generation != self.generation or phase != self.phase:
            return  # the user spoke up since
        session = self.session
        conversation = session.conversation
        if conversation is None:
            return
        prompts = session.engine.settings.language(conversation.language).prompts
        self.phase = TIMEOUT if phase == NUDGE else DONE
        speech = session.speech()
        if phase == NUDGE:
            events = session.engine.say(conversation.id, prompts.nudge, speech=speech)
            await session.stream(events, conversation.id, spoken=speech is not None)
            return
        events = session.engine.say(
            conversation.id, prompts.timeout, speech=speech, end_reason="timeout"
        )
        await session.stream(events, conversation.id, spoken=speech is not None)
        if not session.conversation_open:
            await session.send_turn_complete(conversation.id, reason="timeout")
