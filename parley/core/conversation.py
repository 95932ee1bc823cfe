"""The conversation runtime: one :class:`LiveConversation` per live conversation.

Adapters are transports: they turn platform input into typed commands
(:mod:`parley.core.conversation_commands`) and render the events they receive. The runtime
decides: it keeps the conversation's FIFO, cuts replies short (interrupt, barge-in), runs the
silence timers (nudge, timeout) and live speech-to-text sessions, and every event of the
conversation reaches every subscriber, in this process or (with ``redis.url``) another.

Public API::

    live = runtime.conversations.get(conversation_id)   # created on demand, dropped when idle
                                                         # (conversation_registry.Conversations)
    done = live.submit(UserTurn(Inbound(text="hi"), origin=me))   # queued, run in order
    outcome = await done      # "done" once the turn is stored; "interrupted" when cut short;
                              # "dropped" when its submitter left first; raises EngineError
    await live.interrupt()    # the reply in flight is stored as interrupted (None: nothing ran)
    attachment = live.subscribe(deliver)    # deliver(Envelope) for every later event
    attachment.close()

``submit`` takes every command: :class:`UserTurn`, :class:`Say` and :class:`End` are queued;
:class:`Interrupt` (resolves to the cut message id or None) and :class:`ModelSettings`
(resolves to the stored conversation) act at once. A claimed inbox item is one ``UserTurn``
whose ``done`` says when it may be marked answered (cancelling the wait withdraws a command
not yet started; a running one goes on). Turns that do not go through the runtime (REST,
webhooks) still reach subscribers: :meth:`Engine.turn <parley.core.engine.Engine.turn>`
publishes every event it yields on the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import aclosing, suppress
from typing import Any

from parley.core import conversation_run as run
from parley.core import store
from parley.core.bus import Deliver, Envelope, EventBus, Subscription
from parley.core.config import Template
from parley.core.conversation_commands import (
    Command,
    End,
    Interrupt,
    ListeningUnavailable,
    ModelSettings,
    Outcome,
    Say,
    SilencePrompt,
    UserTurn,
)
from parley.core.conversation_listening import Hearer, Listening
from parley.core.conversation_queue import CommandQueue, Job
from parley.core.conversation_record import follow, surely_open
from parley.core.conversation_silence import NUDGE, Silence
from parley.core.engine import Engine, EngineError
from parley.core.events import (
    AudioCompleted,
    Event,
    InterruptRequested,
    MessageCompleted,
    MessageStarted,
    TurnCompleted,
    TurnStarted,
)
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord

__all__ = ["Attachment", "ListeningUnavailable", "LiveConversation", "Outcome"]

log = logging.getLogger(__name__)

CLIENT = {"interrupted_by": "client"}
"""What a reply cut at a client's request (from another process) keeps in its metadata."""


class Attachment:
    """One subscriber of a live conversation; :meth:`close` detaches it."""

    def __init__(
        self,
        live: LiveConversation,
        subscription: Subscription,
        deliver: Deliver,
        origin: str | None,
    ) -> None:
        self.live = live
        self.subscription = subscription
        self.deliver = deliver
        self.origin = origin
        """The subscriber's name as a submitter: answers meant for it alone reach it here."""
        self.silence = False

    def enable_silence(self) -> None:
        """This subscriber wants the silence prompts (nudge, timeout); the clock starts over."""
        if not self.silence and not self.subscription.closed:
            self.silence = True
            self.live._silence_changed(reset=True)

    def close(self) -> None:
        """Stop receiving the conversation's events."""
        if self.subscription.closed:
            return
        self.subscription.close()
        self.live.attachments.discard(self)
        self.live._silence_changed(reset=False)
        self.live._maybe_drop()


class LiveConversation(CommandQueue):
    """A conversation while someone is attached to it or work of it is queued."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        conversation_id: str,
        forget: Callable[[LiveConversation], None] = lambda live: None,
    ) -> None:
        super().__init__(bus, conversation_id)
        self.engine = engine
        self._forget = forget
        """Called once when the conversation is dropped (the registry forgets it)."""
        self.speech: SpeechOptions | None = None
        """How prompts of the silence timer are spoken (the transport's latest choice)."""
        self.record: ConversationRecord | None = None
        self.attachments: set[Attachment] = set()
        self.listenings: set[Listening] = set()
        self.silence = Silence(self)
        self._closed = False
        self._published: set[int] = set()
        """Events of the running command that the bus carried (the others are replays)."""
        self._observer = self.bus.subscribe(conversation_id, self._observe)

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(
        self,
        deliver: Deliver,
        *,
        conversation: ConversationRecord | None = None,
        origin: str | None = None,
    ) -> Attachment:
        """Call ``deliver(envelope)`` with every later event of the conversation, whichever
        process produces it. ``conversation``: the record the subscriber has (saves a read);
        ``origin``: the name it submits commands under (a repeated idempotency key's answer,
        replayed from the store, goes to it alone)."""
        if conversation is not None and (self.record is None or self.record.is_open):
            self.record = conversation  # never an open copy over an end it heard of
        subscription = self.bus.subscribe(self.id, deliver)
        attachment = Attachment(self, subscription, deliver, origin)
        self.attachments.add(attachment)
        return attachment

    def open_record(self) -> ConversationRecord | None:
        """The conversation's record while it is surely open (see
        :func:`~parley.core.conversation_record.surely_open`): a transport need not read it
        before each turn."""
        return surely_open(self.record, self.engine.settings.conversation.session_ttl)

    async def ready(self) -> None:
        """Return once events from other processes reach the subscribers (Redis confirmed)."""
        await self.bus.ready(self.id)

    # -- commands --------------------------------------------------------------------------

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Hand the runtime a command; the future says when (and how) it was carried out."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(run.retrieve)
        if isinstance(command, Interrupt):
            self._settle(future, self._interrupt(command))
            return future
        if isinstance(command, ModelSettings):
            self._settle(future, self._model_settings(command.values))
            return future
        job = Job(command, future, origin=getattr(command, "origin", None))
        speech = command.speech if isinstance(command, UserTurn | Say) else self.speech
        if isinstance(command, UserTurn | Say | SilencePrompt):  # replies: they may be cut
            job.replying, job.spoken = True, speech is not None and self.engine.tts is not None
        if isinstance(command, UserTurn) and command.barge_in:
            self._settle(None, self.barge_in())
        self._enqueue(job)
        return future

    def barge_in_allowed(self, spoken: bool) -> bool:
        """Whether the user may cut a reply short: it is ``spoken`` and the template allows it."""
        if not spoken:
            return False
        try:
            template_id = self.record.template_id if self.record else None
            return self.engine.template(template_id).barge_in
        except EngineError:
            return True

    async def _interrupt(self, command: Interrupt) -> str | None:
        """The reply in flight, or the one ``command.message_id`` names (see :class:`Interrupt`)."""
        target = command.message_id
        if target is None or target == self.streaming:
            cut = await self.interrupt(command.metadata, barge_in=command.barge_in)
            if cut is not None or target is None:
                return cut
        return await run.interrupt_finished(
            self.engine, self.id, target, command.metadata, command.origin
        )

    async def request_interrupt(self, message_id: str, origin: str | None = None) -> None:
        """Ask whichever process produces ``message_id`` to cut it short (``interrupted`` then
        reaches every subscriber); for a reply that does not run here."""
        await self.bus.publish(self.id, InterruptRequested(message_id), origin)

    async def barge_in(self) -> None:
        """The user cut in (speech, an interim transcript, a message): interrupt a spoken reply
        when the template allows barge-in."""
        await self.interrupt(barge_in=True)

    def touch(self) -> None:
        """The user did something: the silence clock starts over from the nudge."""
        self.silence.touch()

    def set_speech(self, speech: SpeechOptions | None) -> None:
        """How the silence prompts are spoken from now on (None: text only)."""
        self.speech = speech

    async def leave(self, origin: str) -> None:
        """``origin`` is gone (a closed socket): its queued commands are dropped and, when
        nobody else is attached, its reply in flight is cut short; returns once that reply is
        stored (``interrupted``)."""
        for job in [j for j in self.queue if j.origin == origin]:
            self.queue.remove(job)
            if not job.future.done():
                job.future.set_result("dropped")
        job = self.current
        if job is None or job.origin != origin or job.task is None or self.attachments:
            return
        job.task.cancel()
        await asyncio.wait({job.task})

    async def listen(self, hearer: Hearer, *, encoding: str, sample_rate: int | None) -> Listening:
        """Open a live speech-to-text session in the conversation's language.

        ListeningUnavailable without a live STT provider; ProviderError when it fails to open.
        """
        language = self.record.language if self.record else None
        listening = await Listening.open(
            self, hearer, self.engine.stt, encoding, sample_rate, language
        )
        self.listenings.add(listening)
        listening.task.add_done_callback(lambda _: self._listening_over(listening))
        return listening

    def _listening_over(self, listening: Listening) -> None:
        self.listenings.discard(listening)
        self._maybe_drop()

    async def _execute(self, job: Job) -> None:
        command = job.command
        if isinstance(command, UserTurn):
            await run.transcribed(self.engine, self.id, self.record, command.inbound)
            events = self.engine.turn(
                self.id, command.inbound, speech=command.speech, origin=job.origin
            )
            async with aclosing(events) as stream:
                async for event in stream:
                    if id(event) not in self._published:
                        await self._answer_privately(job.origin, event)
                    self._published.clear()
        elif isinstance(command, Say):
            say = command
            await run.say(self.engine, self.id, say.text, say.speech, say.end_reason, job.origin)
        elif isinstance(command, End):
            await run.end(self.engine, self.id, command)
        elif isinstance(command, SilencePrompt):
            await self._silence_prompt(command)

    async def _model_settings(self, values: dict[str, Any]) -> ConversationRecord | None:
        self.record = await run.set_model_settings(self.id, values) or self.record
        return self.record

    def _busy(self) -> None:
        self.silence.busy()

    def _idle(self) -> None:
        if not self._closed:
            self.silence.idle()

    # -- silence ---------------------------------------------------------------------------

    def silence_template(self) -> Template | None:
        """The template whose silence settings apply, or None (closed, nobody wants prompts)."""
        record = self.record
        if record is None or not record.is_open or not any(a.silence for a in self.attachments):
            return None
        try:
            return self.engine.template(record.template_id)
        except EngineError:
            return None

    def silence_prompt(self, phase: int, generation: int) -> None:
        """Queue the nudge or timeout prompt."""
        self.submit(SilencePrompt(phase, generation))

    async def _silence_prompt(self, command: SilencePrompt) -> None:
        if not self.silence.current(command.phase, command.generation):
            return
        conversation = await store.get_conversation(self.id)
        if conversation is None:
            return
        prompts = self.engine.settings.language(conversation.language).prompts
        # Several processes may watch the conversation (sockets on each): one says the prompt.
        since = self.silence.since
        if command.phase == NUDGE:
            await run.say(self.engine, self.id, prompts.nudge, self.speech, None, None, since)
        else:
            await run.say(
                self.engine, self.id, prompts.timeout, self.speech, "timeout", None, since
            )

    def _silence_changed(self, *, reset: bool) -> None:
        if not any(a.silence for a in self.attachments):
            self.silence.stop()
            return
        if reset:
            self.silence.reset()
        if self._worker is None:
            self.silence.idle()

    # -- what happens in the conversation --------------------------------------------------

    async def _answer_privately(self, origin: str | None, event: Event) -> None:
        """An event the engine yielded without publishing it (a repeated idempotency key's
        answer, replayed from the store): for the submitter alone, who saw nothing else."""
        envelope = Envelope(self.id, event, origin, self.bus.node)
        for attachment in list(self.attachments):
            if origin is not None and attachment.origin == origin:
                await attachment.deliver(envelope)

    async def _observe(self, envelope: Envelope) -> None:
        """Every event of the conversation, before other local subscribers see it."""
        event = envelope.event
        local = envelope.node == self.bus.node
        job = self.current
        if local and job is not None:
            self._published.add(id(event))
            if isinstance(event, MessageStarted):
                self.streaming = event.message_id
            elif isinstance(event, AudioCompleted) or (
                isinstance(event, MessageCompleted) and not job.spoken
            ):
                self.streaming = None
        if isinstance(event, MessageStarted):
            self.announced = event.message_id  # from any process: stored only once it streams
        elif isinstance(event, MessageCompleted) and event.message_id == self.announced:
            self.announced = None
        ttl = self.engine.settings.conversation.session_ttl
        self.record = follow(self.record, event, local and job is not None, ttl)
        if isinstance(event, InterruptRequested) and not local:
            if event.message_id == self.streaming and self.replying:
                self._settle(None, self.interrupt(CLIENT))
            return
        if not local or job is None:
            # A turn from elsewhere (REST, another process): activity, and the clock restarts.
            if isinstance(event, TurnStarted):
                self.silence.touch()
            elif isinstance(event, TurnCompleted) and self._worker is None:
                self.silence.reset()

    # -- life ------------------------------------------------------------------------------

    def _maybe_drop(self) -> None:
        busy = self.queue or self._worker or self.listenings or len(self._tasks) > 1
        if self._closed or self.attachments or busy:
            return
        self._close_now()

    def _close_now(self) -> None:
        self._closed = True
        self.silence.stop()
        self._observer.close()
        self._forget(self)

    async def close(self) -> None:
        """Stop everything: listening sessions, the reply in flight (stored interrupted)."""
        self.silence.stop()
        for listening in list(self.listenings):
            await listening.cancel()
        for job in self.queue:
            if not job.future.done():
                job.future.set_result("dropped")
        self.queue.clear()
        worker = self._worker
        if worker is not None:
            worker.cancel()
            with suppress(asyncio.CancelledError):
                await worker
        for attachment in list(self.attachments):
            attachment.close()
        if not self._closed:
            self._close_now()
