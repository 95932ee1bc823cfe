"""The report's one-turn sections: a text turn taken apart, and the time to first audio."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from figures import field, median, spread


def anatomy_section(data: dict) -> list[str]:
    """Where a text turn's time goes outside the LLM."""
    out = [
        "### One turn, taken apart",
        "",
        "One conversation per system, turns one after another (interleaved), timed on the "
        "client's, the servers' and the fake LLM's clocks (the same machine): from the message "
        "sent to the LLM request arriving at the fake; from the user's message committed to the "
        "request sent, and how much of that the openai SDK's `post()` took (the probe, "
        "`bench/probe`, loaded into both servers, notes the moment SQLite's autocommit INSERT "
        "of a message returns on the database thread, the SDK's `post()` is called, and the "
        "last bytes of the request's body are handed to its socket); from the commit to the "
        "request arriving at the fake (its headers parsed: under the baseline's SDK httpcore "
        "writes the headers, passes through the event loop, then writes the body, so this can "
        "come before the body is sent; Parley's aiohttp sends headers and body in one write; "
        "it adds the loopback and the fake's own HTTP parsing); the LLM's own "
        "time; and from the LLM's last word to `turn_complete` at the client. Median [min-max] "
        "of the turns, ms.",
        "",
        "| | Message -> LLM request at the fake | Committed user message -> request sent "
        "| Of it, the SDK's `post()` | Committed -> request at the fake | LLM (fake) "
        "| Last word -> turn_complete | Added, total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("baseline", "parley"):
        runs = data[name]
        added = [r["to_llm_request"] + r["after_llm"] for r in runs]
        out.append(
            f"| {name} | {spread(field(runs, 'to_llm_request'), 1000, 1)} "
            f"| {spread(field(runs, 'committed_to_request_sent'), 1000, 1)} "
            f"| {spread(field(runs, 'in_sdk_post'), 1000, 1)} "
            f"| {spread(field(runs, 'committed_to_llm_request'), 1000, 1)} "
            f"| {spread(field(runs, 'llm'), 1000)} "
            f"| {spread(field(runs, 'after_llm'), 1000, 1)} | {spread(added, 1000, 1)} |"
        )
    return out


def _ideal_as_run(row: dict) -> list[float]:
    """Per turn: the first sentence's time at the fake LLM plus the fake TTS's first byte."""
    return [s["llm_to_first_sentence"] + s["tts_to_first_byte"] for s in row["steps"]]


def speech_ratio(row: dict) -> float:
    """Median over the turns of first audio / the ideal as run."""
    return median([a / i for a, i in zip(row["first_audio"], _ideal_as_run(row), strict=True)])


def speech_section(data: dict, images: Path, prefix: str) -> list[str]:
    """Time to first audio against the ideal."""
    out = [
        "## Time to first audio",
        "",
        "Parley over `/ws` with spoken replies (PCM 16 kHz) on the fake LLM and the fake "
        "ElevenLabs. The *ideal* is what no framework can beat: the moment the first sentence's "
        "last word leaves the LLM (counted from the user's message), plus the TTS's first byte "
        "for that sentence (the fake's set latency plus 0.5 ms a character: 122 ms for the "
        "44-character first sentence in the fast scenario). Words arrive as tokenizers send "
        "them, the space leading (`' Start'`), so the whitespace that makes a sentence's end "
        "certain arrives with the next word: that one token's wait is Parley's, not the "
        "ideal's. *Ideal* is computed from the set latencies; *ideal, as run* from the fakes' "
        "own clocks in each turn (their sleeps overshoot a little on a busy machine), and the "
        "ratio uses it. Median [min-max] of the turns.",
        "",
        "| Scenario (LLM first token / per token, TTS first byte) | First sentence done | Ideal "
        "| Ideal, as run | First audio, Parley | Ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = list(data)
    for name in names:
        row = data[name]
        pace = row["pace"]
        label = (
            f"{name} ({pace['first_token'] * 1000:.0f} / {pace['per_token'] * 1000:.0f} ms, "
            f"{pace['first_byte'] * 1000:.0f} ms)"
        )
        out.append(
            f"| {label} | {row['first_sentence_done'] * 1000:.0f} ms "
            f"| {row['ideal'] * 1000:.0f} ms | {spread(_ideal_as_run(row), 1000)} ms "
            f"| {spread(row['first_audio'], 1000)} ms | {speech_ratio(row):.3f}x |"
        )
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], [data[n]["ideal"] * 1000 for n in names], 0.4, label="ideal")
    ax.barh(
        [y - 0.2 for y in ys],
        [median(data[n]["first_audio"]) * 1000 for n in names],
        0.4,
        label="Parley",
    )
    ax.set_yticks(list(ys), names)
    ax.set_xlabel("ms from the user's message to the first audio")
    ax.legend()
    fig.tight_layout()
    fig.savefig(images / "first_audio.png", dpi=80)
    plt.close(fig)
    out += [
        "",
        f"![Time to first audio]({prefix}/first_audio.png)",
        "",
        "Where the time to first audio goes (median of the turns, ms; the client's and the "
        "fakes' clocks). *Next word* is the wait for the token whose leading space makes the "
        "first sentence certain (one token's time, and the fake's sleep overshooting it); "
        "*Parley* is what is left of first audio once the ideal as run and that wait are taken "
        "off: the message to the LLM request, the next word to the TTS request, the first byte "
        "to the client.",
        "",
        "| Scenario | Message -> LLM request | LLM -> first sentence's last word "
        "| -> next word | -> TTS request | TTS -> first byte | First byte -> client | Parley |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        steps = data[name]["steps"]
        cells = " | ".join(f"{median(field(steps, key)) * 1000:.1f}" for key in _STEPS)
        own = [
            audio - ideal - step["sentence_to_next_word"]
            for audio, ideal, step in zip(
                data[name]["first_audio"], _ideal_as_run(data[name]), steps, strict=True
            )
        ]
        out.append(f"| {name} | {cells} | {median(own) * 1000:.1f} |")
    return out


_STEPS = (
    "to_llm_request",
    "llm_to_first_sentence",
    "sentence_to_next_word",
    "next_word_to_tts_request",
    "tts_to_first_byte",
    "first_byte_to_client",
)
