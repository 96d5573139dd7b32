"""Latency statistics over the runner's own per-iteration times (never host-side timing over adb)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HIGH_CV = 0.10


@dataclass(frozen=True)
class Stats:
    """Microseconds; ``cv`` is std / mean (coefficient of variation), a unitless spread."""

    n: int
    min: float
    median: float
    mean: float
    p90: float
    p99: float
    std: float
    cv: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(iter_us: list[float] | tuple[float, ...]) -> Stats:
    if not iter_us:
        raise ValueError("no iterations to summarize")
    a = np.asarray(iter_us, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return Stats(n=int(a.size), min=float(a.min()), median=float(np.median(a)), mean=mean,
                 p90=float(np.percentile(a, 90)), p99=float(np.percentile(a, 99)), std=std,
                 cv=std / mean if mean > 0 else 0.0)
