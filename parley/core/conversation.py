"""The conversation runtime: one :class:`LiveConversation` per live conversation.

Adapters are transports: they turn platform input into typed commands
(:mod:`parley.core.conversation_commands`) and render the events they receive. The runtime
decides: it keeps the conversation's FIFO, cuts replies short (interrupt, barge-in), runs the
silence timers (nudge, timeout) and live speech-to-text sessions, and every event of the
conversation reaches every subscriber, in this process or (with ``redis.url``) another.

Public API::

    live = runtime.conversations.get(conversation_id)   # created on demand, dropped when idle
    done = live.submit(UserTurn(Inbound(text="hi"), origin=me))   # queued, run in order
    outcome = await done      # "done" once the turn is stored; "interrupted" when cut short;
                              # "dropped" when its submitter left first; raises EngineError
    await live.interrupt()    # the reply in flight is stored as interrupted (None: nothing ran)
    attachment = live.subscribe(deliver)    # deliver(Envelope) for every later event
    attachment.close()

``submit`` takes every command: :class:`UserTurn`, :class:`Say` and :class:`End` are queued;
:class:`Interrupt` (resolves to the cut message id or None) and :class:`ModelSettings`
(resolves to the stored conversation) act at once. A claimed inbox item is one ``UserTurn``
whose ``done`` says when it may be marked answered. Turns that do not go through the runtime
(REST, webhooks) still reach subscribers: :meth:`Engine.turn <parley.core.engine.Engine.turn>`
publishes every event it yields on the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

from parley.core import store
from parley.core.bus import Envelope, EventBus, Subscription
from parley.core.config import Template
from parley.core.conversation_commands import (
    Command,
    End,
    Interrupt,
    ModelSettings,
    Say,
    UserTurn,
)
from parley.core.conversation_listening import Hearer, Listening
from parley.core.conversation_silence import NUDGE, Silence
from parley.core.engine import Engine, EngineError
from parley.core.events import (
    AudioCompleted,
    ConversationEnded,
    Interrupted,
    MessageCompleted,
    MessageStarted,
    TurnCompleted,
    TurnStarted,
)
from parley.core.providers import LiveSTTProvider
from parley.core.speech import SpeechOptions
from parley.core.store.records import ConversationRecord

__all__ = ["Attachment", "Conversations", "ListeningUnavailable", "LiveConversation", "Outcome"]

log = logging.getLogger(__name__)

Outcome = Literal["done", "interrupted", "dropped"]


class ListeningUnavailable(Exception):
    """The engine has no live speech-to-text provider."""


@dataclass(frozen=True, slots=True)
class _SilencePrompt(Command):
    phase: int
    generation: int


@dataclass(eq=False, slots=True)
class _Job:
    command: Command
    future: asyncio.Future[Any]
    origin: str | None = None
    replying: bool = False
    """A reply (a turn, a prompt): interrupt and barge-in may cut it short."""
    spoken: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Attachment:
    """One subscriber of a live conversation; :meth:`close` detaches it."""

    def __init__(self, live: LiveConversation, subscription: Subscription) -> None:
        self.live = live
        self.subscription = subscription
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


class LiveConversation:
    """A conversation while someone is attached to it or work of it is queued."""

    def __init__(self, conversations: Conversations, conversation_id: str) -> None:
        self.conversations = conversations
        self.id = conversation_id
        self.engine: Engine = conversations.engine
        self.bus: EventBus = conversations.bus
        self.queue: deque[_Job] = deque()
        self.current: _Job | None = None
        self.streaming: str | None = None
        """Id of the message whose text or audio is being produced (None between messages)."""
        self.speech: SpeechOptions | None = None
        """How prompts of the silence timer are spoken (the transport's latest choice)."""
        self.record: ConversationRecord | None = None
        self.attachments: set[Attachment] = set()
        self.listenings: set[Listening] = set()
        self.silence = Silence(self)
        self._worker: asyncio.Task[None] | None = None
        self._cut: asyncio.Task[None] | None = None
        self._cut_metadata: dict[str, Any] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._observer = self.bus.subscribe(conversation_id, self._observe)

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(
        self, deliver: Any, *, conversation: ConversationRecord | None = None
    ) -> Attachment:
        """Call ``deliver(envelope)`` with every later event of the conversation, whichever
        process produces it. ``conversation``: the record the subscriber has (saves a read)."""
        if conversation is not None:
            self.record = conversation
        attachment = Attachment(self, self.bus.subscribe(self.id, deliver))
        self.attachments.add(attachment)
        return attachment

    async def ready(self) -> None:
        """Return once events from other processes reach the subscribers (Redis confirmed)."""
        await self.bus.ready(self.id)

    # -- commands --------------------------------------------------------------------------

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Hand the runtime a command; the future says when (and how) it was carried out."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        if isinstance(command, Interrupt):
            self._settle(future, self.interrupt(command.metadata, barge_in=command.barge_in))
            return future
        if isinstance(command, ModelSettings):
            self._settle(future, self._model_settings(command.values))
            return future
        job = _Job(command, future, origin=getattr(command, "origin", None))
        if isinstance(command, UserTurn | Say):
            job.replying, job.spoken = True, command.speech is not None
        elif isinstance(command, _SilencePrompt):
            job.replying, job.spoken = True, self.speech is not None
        if isinstance(command, UserTurn) and command.barge_in:
            self._settle(asyncio.get_running_loop().create_future(), self.barge_in())
        self.queue.append(job)
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"conversation-{self.id}")
        return future

    def _settle(self, future: asyncio.Future[Any], work: Any) -> None:
        """Run ``work`` now (a task of its own) and settle ``future`` with its result."""

        async def run() -> None:
            try:
                result = await work
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._maybe_drop()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def replying(self) -> bool:
        """A reply (a turn, a prompt) is running: interrupt may cut it short."""
        job = self.current
        return job is not None and job.replying and job.task is not None and not job.task.done()

    def barge_in_allowed(self, spoken: bool) -> bool:
        """Whether the user may cut a reply short: it is ``spoken`` and the template allows it."""
        if not spoken:
            return False
        try:
            template_id = self.record.template_id if self.record else None
            return self.engine.template(template_id).barge_in
        except EngineError:
            return True

    async def interrupt(
        self, metadata: dict[str, Any] | None = None, *, barge_in: bool = False
    ) -> str | None:
        """Cut the reply in flight short; queued commands go on.

        A reply cut mid-stream is stored as ``interrupted`` with its text so far and subscribers
        get :class:`~parley.core.events.Interrupted` before anything of the next command.
        Returns that message id, or None when no reply was running (or, with ``barge_in``, when
        it is not spoken or the template forbids barge-in). ``metadata`` is merged into the cut
        message's stored metadata.
        """
        job = self.current
        if job is None or job.task is None or job.task.done() or not job.replying:
            return None
        if barge_in and not self.barge_in_allowed(job.spoken):
            return None
        message_id = self.streaming
        if self._cut is not job.task:  # cancel once: a second cancel would cut the clean-up short
            self._cut = job.task
            self._cut_metadata = metadata
            job.task.cancel()
        try:
            await asyncio.wait({job.task})
        finally:
            self._cut_metadata = None
        return message_id

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
        stt = self.engine.stt
        if not isinstance(stt, LiveSTTProvider):
            raise ListeningUnavailable("live speech recognition is not available")
        language = self.record.language if self.record else None
        live = await stt.live(encoding=encoding, sample_rate=sample_rate, language=language)
        listening = Listening(
            self, hearer, live, encoding, sample_rate, provider=getattr(stt, "name", None)
        )
        self.listenings.add(listening)
        listening.task.add_done_callback(lambda _: self._listening_over(listening))
        return listening

    def _listening_over(self, listening: Listening) -> None:
        self.listenings.discard(listening)
        self._maybe_drop()

    # -- the FIFO --------------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while self.queue:
                job = self.queue.popleft()
                if job.future.done():
                    continue
                self.silence.busy()
                self.current = job
                job.task = asyncio.create_task(self._run(job))
                try:
                    await asyncio.wait({job.task})
                except asyncio.CancelledError:
                    job.task.cancel()
                    with suppress(asyncio.CancelledError):
                        await job.task
                    raise
                finally:
                    self.current = None
                    if not job.future.done():
                        job.future.set_result("interrupted")
        finally:
            self._worker = None
            if not self._closed:
                self.silence.idle()
                self._maybe_drop()

    async def _run(self, job: _Job) -> None:
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            message_id, self.streaming = self.streaming, None
            if message_id is not None:
                metadata = self._cut_metadata if self._cut is job.task else None
                if metadata:
                    with suppress(LookupError):
                        await _merge_metadata(message_id, metadata)
                await self.bus.publish(self.id, Interrupted(message_id), job.origin)
            if not job.future.done():
                job.future.set_result("interrupted")
            raise
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            if not job.future.done():
                job.future.set_result("done")
        finally:
            self.streaming = None

    async def _execute(self, job: _Job) -> None:
        command = job.command
        if isinstance(command, UserTurn):
            events = self.engine.turn(
                self.id, command.inbound, speech=command.speech, origin=job.origin
            )
            async with aclosing(events) as stream:
                async for _ in stream:
                    pass
        elif isinstance(command, Say):
            await self._say(command.text, command.speech, command.end_reason, job.origin)
        elif isinstance(command, End):
            await self._end(command)
        elif isinstance(command, _SilencePrompt):
            await self._silence_prompt(command)

    async def _say(
        self,
        text: str | None,
        speech: SpeechOptions | None,
        end_reason: str | None,
        origin: str | None,
    ) -> None:
        events = self.engine.say(self.id, text, speech=speech, end_reason=end_reason, origin=origin)
        ended = False
        async with aclosing(events) as stream:
            async for event in stream:
                ended = ended or isinstance(event, ConversationEnded)
        if ended and end_reason:
            # The conversation ended outside a turn: close it the way a turn does.
            conversation = await store.get_conversation(self.id)
            turns = conversation.turn_count if conversation else 0
            await self.bus.publish(self.id, TurnCompleted(self.id, turns, True, end_reason), origin)

    async def _end(self, command: End) -> None:
        conversation = await store.get_conversation(self.id)
        if conversation is None or not conversation.is_open:
            return
        if command.farewell:
            prompt = self.engine.settings.language(conversation.language).prompts.end
            await self._say(prompt, None, command.reason, command.origin)
            return
        await self.engine.end(self.id, command.reason, farewell=False)
        await self.bus.publish(self.id, ConversationEnded(self.id, command.reason), command.origin)

    async def _model_settings(self, values: dict[str, Any]) -> ConversationRecord | None:
        conversation = await store.get_conversation(self.id)
        if conversation is None:
            return None
        state = {**conversation.state, "model_settings": dict(values)}
        self.record = await store.update_conversation(self.id, state=state)
        return self.record

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
        self.submit(_SilencePrompt(phase, generation))

    async def _silence_prompt(self, command: _SilencePrompt) -> None:
        if not self.silence.current(command.phase, command.generation):
            return
        conversation = await store.get_conversation(self.id)
        if conversation is None:
            return
        prompts = self.engine.settings.language(conversation.language).prompts
        if command.phase == NUDGE:
            await self._say(prompts.nudge, self.speech, None, None)
        else:
            await self._say(prompts.timeout, self.speech, "timeout", None)

    def _silence_changed(self, *, reset: bool) -> None:
        if not any(a.silence for a in self.attachments):
            self.silence.stop()
            return
        if reset:
            self.silence.reset()
        if self._worker is None:
            self.silence.idle()

    # -- what happens in the conversation --------------------------------------------------

    async def _observe(self, envelope: Envelope) -> None:
        """Every event of the conversation, before other local subscribers see it."""
        event = envelope.event
        local = envelope.node == self.bus.node
        job = self.current
        if local and job is not None:
            if isinstance(event, MessageStarted):
                self.streaming = event.message_id
            elif isinstance(event, AudioCompleted) or (
                isinstance(event, MessageCompleted) and not job.spoken
            ):
                self.streaming = None
        if isinstance(event, ConversationEnded) and self.record is not None:
            self.record = dataclasses.replace(self.record, status="ended")
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
        self.conversations._forget(self)

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


class Conversations:
    """The live conversations of this process."""

    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._live: dict[str, LiveConversation] = {}

    def get(self, conversation_id: str) -> LiveConversation:
        """The live conversation (created when there is none)."""
        live = self._live.get(conversation_id)
        if live is None:
            live = self._live[conversation_id] = LiveConversation(self, conversation_id)
        return live

    def find(self, conversation_id: str) -> LiveConversation | None:
        """The live conversation, or None when nothing of it runs here."""
        return self._live.get(conversation_id)

    def _forget(self, live: LiveConversation) -> None:
        if self._live.get(live.id) is live:
            del self._live[live.id]

    def __len__(self) -> int:
        return len(self._live)

    async def close(self) -> None:
        """Stop every live conversation (replies in flight are stored interrupted)."""
        for live in list(self._live.values()):
            await live.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: a submitter may not wait for its outcome."""
    if not future.cancelled():
        future.exception()


async def _merge_metadata(message_id: str, extra: dict[str, Any]) -> None:
    stored = await store.get_message(message_id)
    if stored is not None:
        await store.update_message(message_id, metadata={**stored.metadata, **extra})
