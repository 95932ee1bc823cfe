"""From live STT results to what a conversation needs: the utterance so far, and finished ones.

A live provider reports an utterance in pieces: interim guesses, then final stretches, then an
end (``speech_final`` or ``UtteranceEnd``). :class:`Utterances` joins them::

    utterances = Utterances()
    async for result in session:
        heard = utterances.add(result)
        if heard is None:
            continue
        if heard.final:
            ...  # run a turn with heard.text
        else:
            ...  # show heard.text as the user speaks
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.core.providers import LiveResult, LiveTranscript, UtteranceEnd

__all__ = ["Heard", "Utterances"]


@dataclass(frozen=True, slots=True)
class Heard:
    """The user's current utterance: still being spoken (``final`` False) or finished."""

    text: str
    final: bool


@dataclass(slots=True)
class Utterances:
    """Joins a live session's results into utterances."""

    _finals: list[str] = field(default_factory=list)
    _interim: str = ""

    def add(self, result: LiveResult) -> Heard | None:
        """Take one result; return the utterance so far, a finished one, or None (no change)."""
        if isinstance(result, UtteranceEnd):
            return self.flush()
        if not isinstance(result, LiveTranscript):
            return None
        text = result.text.strip()
        if not result.is_final:
            self._interim = text
            return Heard(self._joined(), False) if text else None
        self._interim = ""
        if text:
            self._finals.append(text)
        if result.speech_final:
            return self.flush()
        return Heard(self._joined(), False) if text else None

    def flush(self) -> Heard | None:
        """End the utterance now (utterance end, or the user stopped listening)."""
        text = self._joined()
        self._finals, self._interim = [], ""
        return Heard(text, True) if text else None

    @property
    def pending(self) -> str:
        """What has been heard of the current utterance."""
        return self._joined()

    def _joined(self) -> str:
        return " ".join(part for part in (*self._finals, self._interim) if part)
