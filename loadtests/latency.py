"""Percentiles of measured latencies, one definition for every figure the load tools print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

N = TypeVar("N", int, float)


def percentile(values: Sequence[N], share: float) -> N:
    """Nearest rank: the smallest value at or below which `share` of the samples fall."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]
