"""Profile ``parley serve`` under load (pyinstrument): where a text turn's server time goes.

    python bench/profile.py [--conversations 100] [--seconds 8] [--out /tmp/parley-profile.txt]

Starts the fakes and ``parley serve`` under pyinstrument, drives the conversations over ``/ws``,
then stops the server (SIGINT) and prints pyinstrument's text report.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import load
from sections import TEXT_PACE


async def main(args: argparse.Namespace) -> None:
    """Profile one load run."""
    with tempfile.TemporaryDirectory(prefix="parley-profile-") as tmp:
        folder = Path(tmp)
        fakes = harness.start_fakes(TEXT_PACE, folder)
        port = harness.free_port()
        settings = harness.parley_settings(
            folder, fakes, f"sqlite://{folder}/parley.sqlite3", speech=False
        )
        argv = [harness.PYTHON, "-m", "pyinstrument", "-r", "text", "-o", str(args.out)]
        argv += ["--show-all", harness.PARLEY, "serve", "--port", str(port)]
        argv += ["--settings", str(settings)]
        server = harness.start("profiled", argv, port, folder)
        try:
            result = await load.load([server], args.conversations, args.seconds)
            print(f"{result.throughput:.1f} turns/s, {result.cpu_per_turn * 1000:.2f} ms CPU/turn")
        finally:
            server.popen.send_signal(signal.SIGINT)
            server.popen.wait(60)
            fakes.stop()
    print(args.out.read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/parley-profile.txt"))
    asyncio.run(main(parser.parse_args()))
