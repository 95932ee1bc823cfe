"""Splitting long replies within Telegram's limits, at the best boundary available."""

from __future__ import annotations

from parley.adapters.telegram.text import fits, split_text, utf16_len


def test_short_text_is_one_piece():
    assert split_text("  hello  ") == ["hello"]
    assert split_text("") == []


def test_paragraphs_win_over_sentences():
    text = "First sentence. Second one.\n\nNext paragraph here."
    assert split_text(text, 40) == ["First sentence. Second one.", "Next paragraph here."]


def test_sentences_then_words_then_a_hard_cut():
    assert split_text("One two. Three four five six.", 20) == ["One two.", "Three four five six."]
    assert split_text("aaaa bbbb cccc", 10) == ["aaaa bbbb", "cccc"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_limits_count_utf16_units():
    assert utf16_len("a😀") == 3
    pieces = split_text("😀" * 3000)
    assert [utf16_len(p) for p in pieces] == [4096, 1904]
    assert all(fits(p, 4096) for p in pieces)


def test_nothing_is_lost():
    text = "\n\n".join(f"Paragraph {i}. " + "Some words here. " * 50 for i in range(20))
    pieces = split_text(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
