"""The one text splitter (linear, at the best boundary) and surrogate / NUL cleaning."""

from __future__ import annotations

from parley.core.text import REPLACEMENT, clean, split_text, utf16_len, utf16_units


def test_clean_replaces_lone_surrogates_only():
    assert clean("ok 😀") == "ok 😀"
    assert clean("cut \ud83d") == f"cut {REPLACEMENT}"
    assert clean("\udc00x\ud800") == f"{REPLACEMENT}x{REPLACEMENT}"
    clean("a\ud83d").encode()  # storable


def test_clean_replaces_nul_which_postgresql_cannot_store():
    assert clean("a\x00b") == f"a{REPLACEMENT}b"
    assert clean("\x00\ud83d") == REPLACEMENT * 2


def test_boundaries_best_first():
    text = "First sentence. Second one.\n\nNext paragraph here."
    assert split_text(text, 40) == ["First sentence. Second one.", "Next paragraph here."]
    assert split_text("One two. Three four five six.", 20) == ["One two.", "Three four five six."]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("   ", 10) == []


def test_units_count_utf16():
    pieces = split_text("😀" * 3000, 4096, units=utf16_units)
    assert [utf16_len(p) for p in pieces] == [4096, 1904]


def test_each_character_is_measured_about_once():
    """Linear work: the old splitter re-measured (and copied) the whole rest for each part, so a
    5 MiB text took 77 s. Count the measurements instead of timing them."""
    text = ("word " * 200 + "\n\n") * 5000  # 5 MB
    calls = 0

    def counted(ch: str) -> int:
        nonlocal calls
        calls += 1
        return utf16_units(ch)

    parts = split_text(text, 4096, units=counted)
    assert calls <= 2 * len(text)
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())
