"""The benchmark suite at tiny sizes, so it cannot rot: every section runs its real processes
(fakes, baseline, ``parley serve`` on SQLite and on PostgreSQL) and the report is written.

Nothing here is timed: the assertions check that each section measured something and that the
report holds it, never how fast it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_writes_every_section(tmp_path, postgres_url):
    out = tmp_path / "benchmarks.md"
    argv = [sys.executable, str(ROOT / "bench/run.py"), "--smoke", "--out", str(out)]
    argv += ["--postgres", postgres_url, "--redis", REDIS_URL]  # the servers the tests use
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    for heading in (
        "## Text turns: Parley against the bare baseline",
        "## Idle sockets",
        "### One turn, taken apart",
        "## Time to first audio",
        "## Per-turn cost as history grows",
        "## 1 vs 2 processes on PostgreSQL",
        "## Local (offline) voice turns",
        "## Chaos",
    ):
        assert heading in report
    for image in ("text.png", "first_audio.png", "history.png"):
        assert (tmp_path / "benchmarks" / image).read_bytes().startswith(b"\x89PNG")

    results = json.loads(out.with_suffix(".json").read_text())
    for system in ("baseline", "parley"):
        for level, runs in results["text"]["runs"][system].items():
            assert all(run["turns"] > 0 and run["cpu_per_turn"] > 0 for run in runs), level
            assert all(not run["errors"] for run in runs), runs
        assert [s["count"] for s in results["sockets"][system]] == [5]
    for system, turns in results["text"]["anatomy"].items():
        # Causality, not speed: the probe saw the user's message committed after its
        # created_at and before the LLM request arrived, and the SDK's post() called after
        # the commit and before the request was sent.
        assert turns, system
        for turn in turns:
            assert 0 < turn["committed_to_llm_request"] <= turn["stored_to_llm_request"], turn
            assert 0 < turn["in_sdk_post"] < turn["committed_to_request_sent"], turn
    for row in results["speech"].values():
        # Causality, not speed: audio cannot start before the first sentence is written.
        assert all(t > row["first_sentence_done"] for t in row["first_audio"])
    # One local voice turn of each kind ran on the local models and was timed.
    voice = results["local_voice"]
    assert voice["ok"], voice["output"]
    rows = [line.split("|") for line in voice["output"].splitlines() if line.startswith("| ")]
    assert [row[1].strip() for row in rows[1:]] == ["typed (baseline)", "spoken"], rows
    assert all(float(row[3]) > 0 for row in rows[1:]), rows
    history = results["history"]
    assert history["database_rows"] >= 300
    assert all(run["latency"] > 0 for runs in history["rows"].values() for run in runs)
    # What each conversation held once measured: the grown ones more than they were grown to
    # (their measured turns add to it); the small one ("10") is not grown.
    # Counted per conversation: each holds less than the whole database.
    held, (small, rows) = history["messages"], history["small_counts"]
    assert 0 < small < held["10"] < history["database_rows"] and small < rows, (held, small, rows)
    grown = [size for size in held if size != "10"]
    assert all(int(size) < held[size] < history["database_rows"] for size in grown), held
    scale = results["scale"]
    assert all(run["turns"] > 0 for runs in scale["runs"].values() for run in runs)
