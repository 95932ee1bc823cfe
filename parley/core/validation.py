"""Validation of settings tables into settings classes, through msgspec.

A settings class is a dataclass whose fields carry their rules: ``Annotated[int, Meta(ge=1,
le=65535)]``, ``Literal["a", "b"]``, ``Meta(pattern=...)``. A check across fields goes in
``__post_init__`` and raises :class:`InvalidSetting` naming its field. :func:`parse_section` turns
any failure into a :class:`SettingsError` whose message starts with the key's dotted path.
"""

from __future__ import annotations

import weakref
from dataclasses import is_dataclass
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

__all__ = ["InvalidSetting", "SettingsError", "error_path", "parse_section", "rule_of"]

T = TypeVar("T")


class SettingsError(Exception):
    """A setting is missing or has the wrong type or value. The message names the key."""


class InvalidSetting(ValueError):
    """Raised by a settings class's ``__post_init__`` for a check that ``Meta`` cannot express
    (one field against another): ``field`` is the key the error is reported at."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _wants_str(hint: Any) -> bool:
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    return str in options and not {int, float, bool} & set(options)


_HINTS: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()
"""Resolved field types per settings class: resolving evaluates every annotation (about 0.3 ms
a class), and a plugin may validate its section on every turn (``Settings.section``)."""


def _hints(cls: Any) -> dict[str, Any]:
    """The field types of a settings dataclass ({} when they cannot be resolved)."""
    if not (isinstance(cls, type) and is_dataclass(cls)):
        return {}
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = get_type_hints(cls, include_extras=True)
        except Exception:  # annotations that cannot be resolved (yet): validate as given
            return {}
        _HINTS[cls] = hints
    return hints


def _bare(hint: Any) -> Any:
    """``hint`` without ``Annotated`` and without ``| None``."""
    while get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _bare(options[0])
    return hint


def _numbers_as_strings(data: Any, cls: Any) -> Any:
    """Numbers given for ``str`` fields become strings: an environment variable's ``123`` (a phone
    number id, a numeric voice id) is parsed as TOML, so it arrives as an integer."""
    hints = _hints(cls)
    if not (hints and isinstance(data, dict)):
        return data
    out = dict(data)
    for name, hint in hints.items():
        if name not in out:
            continue
        value, hint = out[name], _bare(hint)
        if isinstance(value, int | float) and not isinstance(value, bool) and _wants_str(hint):
            out[name] = str(value)
        elif is_dataclass(hint):
            out[name] = _numbers_as_strings(value, hint)
    return out


def rule_of(hint: Any) -> str:
    """What a field's annotation allows, in words: its ``Literal`` choices or ``Meta`` bounds."""
    if get_origin(_bare(hint)) is Literal:
        return "one of " + ", ".join(str(choice) for choice in get_args(_bare(hint)))
    while get_origin(hint) in (Union, UnionType):
        hint = next(a for a in get_args(hint) if a is not type(None))
    metas = [m for m in get_args(hint)[1:] if isinstance(m, Meta)] if get_origin(hint) else []
    low = next((m.ge for m in metas if m.ge is not None), None)
    high = next((m.le for m in metas if m.le is not None), None)
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _explain(cls: Any, data: Any, path: list[str]) -> str:
    """The rule of the field at ``path`` (attribute names) of ``cls``, and a number given for it
    (other values are not echoed: they may be secrets)."""
    hint: Any = cls
    for name in path:
        hint = _hints(_bare(hint)).get(name)
        data = data.get(name) if isinstance(data, dict) else None
    rule = rule_of(hint) if hint is not None else ""
    shown = ""
    if isinstance(data, int | float) and not isinstance(data, bool):
        shown = f", got {data}"
    return f"{shown} (allowed: {rule})" if rule else shown


def error_path(exc: msgspec.ValidationError) -> tuple[str, list[str]]:
    """(what was expected, the path of keys where it was not) of a msgspec validation error."""
    # msgspec's message is "<what was expected> - at `$.<path>`" (no path at the top level).
    detail, _, where = str(exc).rpartition(" - at `$")
    if not detail:
        detail, where = str(exc), ""
    where = where.rstrip("`").replace("[...]", "[*]")  # msgspec hides dict keys as [...]
    return detail, [part for part in where.split(".") if part]


def parse_section(name: str, data: Any, cls: type[T], *, lift: str | None = None) -> T:
    """Validate ``data`` into ``cls``; a failure raises SettingsError naming the key.

    Constraints are the fields' own (``Annotated[int, Meta(ge=1, le=65535)]``, ``Literal[...]``);
    a check across fields in ``__post_init__`` raises :class:`InvalidSetting` to name its key (a
    plain ValueError is reported at the table). ``lift``: a sub-table whose keys the user writes
    at the top level (a persona's ``model`` settings): errors in it are named there."""
    try:
        return msgspec.convert(_numbers_as_strings(data, cls), cls, strict=False)
    except msgspec.ValidationError as exc:
        detail, path = error_path(exc)
        if isinstance(exc.__cause__, InvalidSetting):
            path.append(exc.__cause__.field)
        detail += _explain(cls, data, path)
        if lift is not None and path[:1] == [lift] and len(path) > 1:
            path = path[1:]
        raise SettingsError(".".join([name, *path]) + f": {detail}") from None
