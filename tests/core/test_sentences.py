"""The streaming sentence splitter and the speech cleaner, on tricky texts fed in random pieces."""

from __future__ import annotations

import random

import pytest

from parley.core.sentences import SentenceSplitter, SpeechText, speakable

CASES: list[tuple[str, list[str]]] = [
    ("Hello there. How are you? I am fine!", ["Hello there.", "How are you?", "I am fine!"]),
    ("Ask Dr. Smith about it. He knows.", ["Ask Dr. Smith about it.", "He knows."]),
    ("Mr. and Mrs. Jones came. Prof. Lee too.", ["Mr. and Mrs. Jones came.", "Prof. Lee too."]),
    (
        "Fruits, e.g. apples, are healthy. Eat them, i.e. daily.",
        ["Fruits, e.g. apples, are healthy.", "Eat them, i.e. daily."],
    ),
    (
        "Pi is about 3.14 or so. Version 2.0.1 is out.",
        ["Pi is about 3.14 or so.", "Version 2.0.1 is out."],
    ),
    (
        "He moved to the U.S. in 2010. Then he left.",
        ["He moved to the U.S. in 2010.", "Then he left."],
    ),
    ("The U.S. Army is big. Yes.", ["The U.S. Army is big.", "Yes."]),
    ("Well... I think so. Maybe… not. Hmm...", ["Well... I think so.", "Maybe… not.", "Hmm..."]),
    (
        "Visit https://example.com/a.b?c=d. Then come back.",
        ["Visit https://example.com/a.b?c=d.", "Then come back."],
    ),
    ("See www.parley.dev/docs. It helps.", ["See www.parley.dev/docs.", "It helps."]),
    ("Open config.toml now. Done.", ["Open config.toml now.", "Done."]),
    ("1. Buy milk\n2. Buy eggs\n", ["1. Buy milk", "2. Buy eggs"]),
    ("Apples, pears, etc. and more. Done.", ["Apples, pears, etc. and more.", "Done."]),
    ("We sell apples, pears, etc. Come by.", ["We sell apples, pears, etc.", "Come by."]),
    (
        "See No. 5 on the list. No. That is wrong.",
        ["See No. 5 on the list.", "No.", "That is wrong."],
    ),
    ('He asked "why?" and left. Strange!', ['He asked "why?" and left.', "Strange!"]),
    ('She said "Go." Then she went.', ['She said "Go."', "Then she went."]),
    ("J. R. R. Tolkien wrote books. Good ones.", ["J. R. R. Tolkien wrote books.", "Good ones."]),
    ("Wait?! Really. ", ["Wait?!", "Really."]),
    ("It starts at 9 a.m. sharp. Be there.", ["It starts at 9 a.m. sharp.", "Be there."]),
    ("First line\n\nSecond line", ["First line", "Second line"]),
    ("你好。我很好！谢谢", ["你好。", "我很好！", "谢谢"]),
    ("(This is aside.) Back to it.", ["(This is aside.)", "Back to it."]),
    ("No terminator at all", ["No terminator at all"]),
]


def _feed_randomly(text: str, seed: int, splitter: SentenceSplitter | None = None) -> list[str]:
    rng = random.Random(seed)
    splitter = splitter or SentenceSplitter()
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 9)
        out += splitter.feed(text[i : i + n])
        i += n
    return out + splitter.flush()


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_splitter_table_in_random_pieces(text, expected):
    whole = SentenceSplitter()
    assert whole.feed(text) + whole.flush() == expected
    for seed in range(25):
        assert _feed_randomly(text, seed) == expected, f"seed {seed}"


def test_splitter_cuts_as_text_arrives():
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there. How") == ["Hello there."]
    assert splitter.feed(" are you? I am fine") == ["How are you?"]
    assert splitter.flush() == ["I am fine"]


def test_splitter_cuts_at_the_whitespace_after_a_terminator():
    splitter = SentenceSplitter()
    assert splitter.feed("It is done.") == []  # "done.txt"? not known yet
    assert splitter.feed(" ") == ["It is done."]  # certain now: no need to see the next word
    assert splitter.feed("Is it? ") == ["Is it?"]
    assert splitter.flush() == []


@pytest.mark.parametrize("opening", ["We sell pears, etc.", "See No.", 'He asked "why?"'])
def test_splitter_waits_for_the_next_word_only_where_it_decides(opening):
    splitter = SentenceSplitter()
    assert splitter.feed(opening + " ") == []
    assert splitter.feed("T") == [opening]


def test_long_sentence_is_cut_at_a_clause_boundary():
    text = (
        "This sentence goes on and on, with one clause after another, and it keeps going "
        "without an end in sight; it has semicolons too, and commas, and more words than "
        "anyone should put into one sentence that a machine reads aloud"
    )
    expected = None
    for seed in range(20):
        pieces = _feed_randomly(text, seed, SentenceSplitter(max_chars=100, min_chars=30))
        assert all(len(p) <= 160 for p in pieces)
        assert " ".join(pieces) == text
        expected = expected or pieces
        assert pieces == expected
    assert len(expected) >= 2
    assert all(p.endswith((",", ";")) for p in expected[:-1])


def test_sentence_without_any_boundary_is_cut_at_a_space():
    text = " ".join(["word"] * 120)
    pieces = _feed_randomly(text, 1, SentenceSplitter(max_chars=100, hard_max_chars=150))
    assert all(len(p) <= 150 for p in pieces)
    assert " ".join(pieces) == text


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("**Note:** this is *important*.", "Note: this is important."),
        ("***very*** good, ~~old~~ new", "very good, old new"),
        ("Use `snake_case` names, __really__.", "Use snake_case names, really."),
        ("## A heading", "A heading"),
        ("- a list item", "a list item"),
        ("3. third item", "third item"),
        ("> quoted text", "quoted text"),
        ("Read [the docs](https://x.dev/a.b) now.", "Read the docs now."),
        ("![a cat](cat.png) here", "a cat here"),
        ("Thanks! 👍🏽 See you 🇩🇪 soon 🎉.", "Thanks! See you soon."),
        ("I ❤️ it ✨", "I it"),
        ("<b>bold</b> text", "bold text"),
        ("| a | b |", "a b"),
        ("---", ""),
        ("😀", ""),
        ("C# and F# are languages — both fine…", "C# and F# are languages — both fine…"),
    ],
)
def test_speakable_strips_markdown_and_emojis(raw, spoken):
    assert speakable(raw) == spoken


def test_speech_text_skips_code_blocks_and_empty_sentences():
    text = (
        "Here is code:\n```python\nprint('a. B')\nx = 1\n```\nIt prints a letter. 🎉🎉\n**Done.**"
    )
    for seed in range(10):
        rng = random.Random(seed)
        speech = SpeechText()
        out: list[str] = []
        i = 0
        while i < len(text):
            n = rng.randint(1, 6)
            out += speech.feed(text[i : i + n])
            i += n
        out += speech.flush()
        assert out == ["Here is code:", "It prints a letter.", "Done."]
