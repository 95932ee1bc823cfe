"""The wheel carries every file the package needs at run time (modules, migrations, the widget's
JavaScript modules and demo page), and nothing that does not exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_package_file(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(
        ROOT / "parley", source / "parley", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packed = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("parley/")}
    wanted = {
        p.relative_to(source).as_posix()
        for p in (source / "parley").rglob("*")
        if p.is_file() and p.suffix in {".py", ".js", ".html"}
    }
    assert wanted - packed == set(), "files missing from the wheel"
    assert any(n.startswith("parley/adapters/widget/js/") for n in packed)
