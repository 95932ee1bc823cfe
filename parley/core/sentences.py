"""Sentences for speech: cut from streamed text as it arrives, cleaned of Markdown and emojis.

:class:`SentenceSplitter` scans the text once, left to right, and cuts a sentence as soon as its end is
certain: a terminator followed by whitespace, or the end of the stream. Only where the next word
decides (``etc. and`` / ``etc. So``, ``No. 5``, ``"why?" and`` after closing quotes) does it wait
for that word's first character. It never guesses, so the same text gives the same sentences
however it was chunked.

It does not cut at abbreviations (``Dr.``, ``e.g.``, ``U.S.``), initials, decimals (``3.14``),
ellipses (``...``, ``…``), inside URLs, file names or numbered-list markers. A line break ends a
sentence (list items, paragraphs). A sentence longer than ``max_chars`` is cut at its last clause
boundary (``,`` ``;`` ``:`` or a dash), or at a space past ``hard_max_chars``.

:func:`speakable` turns one sentence into what a TTS should read; :class:`SpeechText` runs both
and drops fenced code blocks.
"""

from __future__ import annotations

import re

__all__ = ["SentenceSplitter", "SpeechText", "speakable"]

_TERMINATORS = ".!?…。！？"
_CJK_TERMINATORS = "。！？"
_CLOSERS = "\"')]}*_`”’»」』"
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr jr st mt ft gen col lt sgt capt cpt rev hon gov sen rep pres vs
    approx appt apt dept viz inc ltd corp
    """.split()
)
"""Words whose period never ends a sentence (lower case, without the period)."""
_BEFORE_NUMBER = frozenset(
    """
    no nos vol vols fig figs p pp ch sec art ex est ca tel ext op para
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
"""Words whose period does not end a sentence when a number follows (``No. 5``, ``Jan. 3``)."""
_UNDECIDED = _BEFORE_NUMBER | {"etc", "al", "cf"}
"""Words whose period ends a sentence or not depending on the next word (``etc. and`` / ``etc. So``).

After any other word, a terminator followed by whitespace ends the sentence at once; after these,
and after closing quotes (``"why?" and``), the splitter waits for the next word's first character."""
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
"""``U.S``, ``e.g``, ``a.m``: letters joined by periods."""
_CLAUSE = re.compile(r"[,;:]\s|\s[—–-]\s")


class SentenceSplitter:
    """Cuts sentences from streamed text: ``feed`` returns those completed so far, ``flush`` the rest.

    ``max_chars``: a sentence longer than this is cut at its last clause boundary past
    ``min_chars``; with none, at its last space once it passes ``hard_max_chars``.
    """

    def __init__(self, *, max_chars: int = 250, min_chars: int = 40, hard_max_chars: int = 400):
        self.max_chars = max_chars
        self.min_chars = min(min_chars, max_chars)
        self.hard_max_chars = max(hard_max_chars, max_chars)
        self._buffer = ""
        self._scan = 0

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the sentences it completed."""
        self._buffer += text
        return self._cut(final=False)

    def flush(self) -> list[str]:
        """The stream ended: return the remaining sentences."""
        sentences = self._cut(final=True)
        rest = self._buffer.strip()
        self._buffer, self._scan = "", 0
        return [*sentences, rest] if rest else sentences

    # -- scanning ------------------------------------------------------------------------------

    def _cut(self, *, final: bool) -> list[str]:
        sentences: list[str] = []
        buf = self._buffer
        start, i = 0, self._scan
        while i < len(buf):
            if i - start >= self.max_chars:
                cut = self._long_cut(buf[start:i])
                if cut:
                    sentences.append(buf[start : start + cut].strip())
                    start += cut
                    continue
            char = buf[i]
            if char == "\n":
                sentences.append(buf[start:i].strip())
                start = i = i + 1
                continue
            if char not in _TERMINATORS:
                i += 1
                continue
            end = self._sentence_end(buf, start, i, final)
            if end is None:  # undecided: wait for more text
                break
            if end < 0:  # not an end: continue after the terminator run
                i = -end
                continue
            sentences.append(buf[start:end].strip())
            start = i = end
        self._buffer = buf[start:]
        self._scan = max(0, i - start)
        return [s for s in sentences if s]

    def _long_cut(self, text: str) -> int | None:
        """Where to cut an over-long sentence (an offset into ``text``), or None to wait."""
        cut = None
        for match in _CLAUSE.finditer(text, self.min_chars):
            cut = match.start() + 1 if match.group()[0] in ",;:" else match.end()
        if cut is None and len(text) >= self.hard_max_chars:
            space = text.rfind(" ", self.min_chars)
            cut = space if space > 0 else len(text)
        return cut

    def _sentence_end(self, buf: str, start: int, i: int, final: bool) -> int | None:
        """At a terminator ``buf[i]``: the sentence's end offset, ``-next`` when it is no end,
        or None when the text that decides has not arrived yet."""
        j = i
        while j < len(buf) and buf[j] in _TERMINATORS:
            j += 1
        k = j
        while k < len(buf) and buf[k] in _CLOSERS:
            k += 1
        if k == len(buf):
            return k if final else None
        run = buf[i:j]
        if any(char in _CJK_TERMINATORS for char in run):
            return k
        if not buf[k].isspace():
            return -k  # "3.14", "e.g.x", "example.com/a", "Hi!!!:"
        if "…" in run or run.count(".") >= 2:
            return -k  # ellipsis
        token = _word_before(buf, start, i) if run == "." else ""
        if _is_abbreviation(token, buf[start:i]):
            return -k
        if k == j and token.lower() not in _UNDECIDED:
            return k  # "done. ": certain at the whitespace, whatever follows
        # "etc. and" / "etc. Come", "No. 5" / "No. That", 'asked "why?" and' / '"Go." Then':
        # the first character after the whitespace decides.
        m = k
        while m < len(buf) and buf[m] in " \t":
            m += 1
        if m == len(buf):
            return k if final else None
        following = buf[m]
        if following.islower():
            return -k
        if following.isdigit() and token.lower() in _BEFORE_NUMBER:
            return -k
        return k


def _word_before(buf: str, start: int, i: int) -> str:
    """The non-space run before position ``i`` (not before ``start``), stripped of openers."""
    j = i
    while j > start and not buf[j - 1].isspace():
        j -= 1
    return buf[j:i].lstrip("\"'([{*_`“‘«")


def _is_abbreviation(token: str, sentence: str) -> bool:
    """True when the period after ``token`` does not end ``sentence``."""
    if not token:
        return False
    lower = token.lower()
    if lower in _ABBREVIATIONS or _DOTTED.match(token):
        return True
    if len(token) == 1 and token.isalpha() and token.isupper():
        return True  # an initial: "J. R. R. Tolkien"
    # A numbered-list marker at the start of the sentence: "1. Buy milk".
    return token.isdigit() and len(token) <= 3 and sentence.strip(" \t*_#>-") == token


# -- cleaning ------------------------------------------------------------------------------------

_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, symbols
    "\u2600-\u27bf"  # miscellaneous symbols, dingbats
    "\u2b00-\u2bff"  # arrows, stars
    "\u2300-\u23ff"  # technical symbols (watch, hourglass...)
    "\ufe0e\ufe0f\u200d\u20e3"  # variation selectors, joiner, keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "]+"
)
_CODE_SPAN = re.compile(r"`+([^`]*)`+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HTML = re.compile(r"</?[A-Za-z][^>]*>")
_LINE_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•]\s+|\d{1,3}[.)]\s+)+")
_EMPHASIS = re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_UNDERSCORES = re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")
_STRAY = re.compile(r"(?:(?<=\s)|^)[*_~#|]+(?=\s|$)|\*+|~~|\|")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?…])")


def speakable(sentence: str) -> str:
    """``sentence`` as it should be read aloud: no Markdown, emojis or HTML; "" if nothing is left."""
    text = _IMAGE.sub(r"\1", sentence)
    text = _LINK.sub(r"\1", text)
    text = _CODE_SPAN.sub(r"\1", text)
    text = _HTML.sub(" ", text)
    text = _LINE_MARKER.sub("", text)
    for _ in range(3):  # nested emphasis: ***x***, **_x_**
        text = _UNDERSCORES.sub(r"\2", _EMPHASIS.sub(r"\2", text))
    text = _EMOJI.sub(" ", text)
    text = _STRAY.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
    if not any(char.isalnum() for char in text):
        return ""
    return text


class SpeechText:
    """Streamed reply text in, speakable sentences out (fenced code blocks are not read)."""

    def __init__(self, splitter: SentenceSplitter | None = None) -> None:
        self.splitter = splitter or SentenceSplitter()
        self._in_code = False

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the speakable sentences it completed."""
        return self._clean(self.splitter.feed(text))

    def flush(self) -> list[str]:
        """The stream ended: the remaining speakable sentences."""
        return self._clean(self.splitter.flush())

    def _clean(self, sentences: list[str]) -> list[str]:
        out = []
        for sentence in sentences:
            if sentence.startswith(("```", "~~~")):
                self._in_code = not self._in_code
                continue
            if self._in_code:
                continue
            spoken = speakable(sentence)
            if spoken:
                out.append(spoken)
        return out
