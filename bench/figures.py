"""Medians and spreads for the benchmark's report: the few statistics every table uses."""

from __future__ import annotations

import math
import statistics


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    """``median [min-max]`` of ``values`` times ``scale``."""
    values = [v * scale for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def median(values: list[float]) -> float:
    """The median of the values that are not None (nan when there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def ratio(a: list[float], b: list[float]) -> float:
    """median(a) / median(b), nan when b's median is 0 or missing."""
    over = median(b)
    return median(a) / over if over and not math.isnan(over) else float("nan")


def ratio_text(parley: list[float], baseline: list[float]) -> str:
    """``ratio`` as ``0.97x``."""
    return f"{ratio(parley, baseline):.2f}x"


def field(runs: list[dict], key: str) -> list[float]:
    """``run[key]`` of every run."""
    return [run[key] for run in runs]
