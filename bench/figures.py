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


def paired(parley: list[float], baseline: list[float]) -> list[float]:
    """The ratio of each repeat (the two systems' runs of one repeat sit side by side)."""
    return [p / b for p, b in zip(parley, baseline, strict=True) if p is not None and b]


def ratio_text(parley: list[float], baseline: list[float]) -> str:
    """``ratio`` as ``0.97x``, with the spread of the repeats' own ratios: ``0.97x [0.90-1.02]``."""
    text = f"{ratio(parley, baseline):.2f}x"
    each = paired(parley, baseline) if len(parley) == len(baseline) else []
    return f"{text} [{min(each):.2f}-{max(each):.2f}]" if len(each) > 1 else text


def field(runs: list[dict], key: str) -> list[float]:
    """``run[key]`` of every run."""
    return [run[key] for run in runs]
