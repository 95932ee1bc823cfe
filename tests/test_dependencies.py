"""Every third-party package ``parley/`` and ``bench/`` import is declared in pyproject.toml where
it is needed, so a fresh install never meets an ImportError the metadata did not announce:

- ``parley/`` (the wheel): in the dependencies or a user-facing extra (``dev`` is not one);
  a package outside the dependencies is imported at module level only in a vendor's own module
  (``plugins/<vendor>/``, ``adapters/<vendor>/``, never its ``plugin.py``), so loading the
  plugins never needs an extra;
- ``bench/`` (``make bench``): in the dependencies or the ``bench`` extra;
- each ``MissingDependency(package, extra)`` names an extra that declares that package.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DISTRIBUTIONS = packages_distributions()


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match[0]).lower()


def _requirements(extra: str | None) -> set[str]:
    """The distributions the dependencies (``extra=None``) or an extra install, ``parley[...]``
    references followed."""
    found = set()
    for requirement in (
        PROJECT["optional-dependencies"][extra] if extra else PROJECT["dependencies"]
    ):
        nested = re.fullmatch(r"parley\[([\w,]+)\]", requirement)
        if nested:
            found |= {d for name in nested[1].split(",") for d in _requirements(name)}
        else:
            found.add(_name(requirement))
    return found


def _imports(folder: str) -> dict[str, list[tuple[Path, bool]]]:
    """Each top-level package imported under ``folder`` (lazy imports inside functions too):
    where, and whether at module level. The standard library and the folder's own modules are
    left out."""
    own = {"parley", "__future__"} | {p.stem for p in (ROOT / folder).glob("*.py")}
    found: dict[str, list[tuple[Path, bool]]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module.split(".")[0]]
            else:
                continue
            for name in set(names) - own - set(sys.stdlib_module_names):
                found.setdefault(name, []).append((path.relative_to(ROOT), id(node) in top))
    return found


def _declared_by(module: str, distributions: set[str]) -> bool:
    return bool({_name(d) for d in DISTRIBUTIONS.get(module, [])} & distributions)


def test_every_package_parley_imports_is_declared_for_users():
    extras = set(PROJECT["optional-dependencies"]) - {"dev"}
    for_users = _requirements(None).union(*(_requirements(extra) for extra in extras))
    missing = {
        module: DISTRIBUTIONS.get(module, ["?"])
        for module in _imports("parley")
        if not _declared_by(module, for_users)
    }
    assert missing == {}, "imported by parley/ but in no dependency or user-facing extra"
    assert {"msgspec", "click", "stamina"} <= _requirements(None)


def test_optional_packages_are_imported_at_module_level_only_in_vendor_modules():
    base = _requirements(None)
    vendor = re.compile(r"parley/(plugins|adapters)/\w+/(?!plugin\.py$)\w+\.py$")
    offenders = [
        f"{path}: {module}"
        for module, places in _imports("parley").items()
        if not _declared_by(module, base)
        for path, top_level in places
        if top_level and not vendor.match(path.as_posix())
    ]
    assert offenders == [], "import it inside the function that needs it"


def test_every_package_bench_imports_is_in_the_bench_extra():
    declared = _requirements(None) | _requirements("bench")
    missing = sorted(m for m in _imports("bench") if not _declared_by(m, declared))
    assert missing == [], "imported by bench/ but not installed by parley[bench]"


def test_missing_dependency_names_an_extra_that_has_the_package():
    checked = 0
    for path in (ROOT / "parley").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "id", "") == "MissingDependency"
            ):
                continue
            package, extra = (
                a.value if isinstance(a, ast.Constant) else None for a in node.args[:2]
            )
            if not isinstance(package, str) or not re.fullmatch(r"[\w.-]+", package):
                continue  # a variable, or a sentence about a missing file
            assert extra in PROJECT["optional-dependencies"], f"{path}: no extra {extra!r}"
            assert _name(package) in _requirements(extra), f"{path}: {package} not in [{extra}]"
            checked += 1
    assert checked >= 4
