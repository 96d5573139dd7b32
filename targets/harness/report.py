"""A profiling run's results: per (bundle, threads) configuration stats, device info and warnings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilevit_deploy.atomic import atomic_path

from .device_info import DeviceInfo
from .stats import Stats


@dataclass(frozen=True)
class ConfigResult:
    bundle: str
    runtime: str
    threads: int
    pin: str | None
    stats: Stats
    load_ms: float
    peak_rss_kb: int
    rel_max_diff: float
    argmax_agreement: float
    iter_us: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "runtime": self.runtime, "threads": self.threads, "pin": self.pin,
                "stats_us": self.stats.to_dict(), "load_ms": self.load_ms, "peak_rss_kb": self.peak_rss_kb,
                "rel_max_diff": self.rel_max_diff, "argmax_agreement": self.argmax_agreement,
                "iter_us": list(self.iter_us)}


@dataclass
class ProfileReport:
    device: DeviceInfo
    warmup: int
    runs: int
    results: list[ConfigResult] = field(default_factory=list)
    temps_before: dict[int, float] = field(default_factory=dict)
    temps_after: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device.to_dict(), "warmup": self.warmup, "runs": self.runs,
                "temps_before_c": self.temps_before, "temps_after_c": self.temps_after,
                "results": [r.to_dict() for r in self.results], "warnings": self.warnings}

    def write_json(self, path: str | Path) -> None:
        """Atomic: a results file exists only for a run that finished."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> str:
        d = self.device
        head = (f"device {d.serial}: {d.model} ({d.soc}, {d.abi}); warmup {self.warmup}, runs {self.runs}; "
                "times in ms from the runner's own clock")
        cols = ("bundle", "runtime", "thr", "pin", "median", "mean", "min", "p90", "p99", "CV", "load", "RSS MB",
                "rel diff")
        rows = [cols]
        for r in self.results:
            s = r.stats
            rows.append((r.bundle, r.runtime, str(r.threads), r.pin or "-", *(f"{v / 1000:.2f}" for v in
                         (s.median, s.mean, s.min, s.p90, s.p99)), f"{s.cv:.1%}", f"{r.load_ms:.0f}",
                         f"{r.peak_rss_kb / 1024:.0f}", f"{r.rel_max_diff:.1e}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
        lines = [head] + ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in
                                    enumerate(zip(row, widths, strict=True))) for row in rows]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)
