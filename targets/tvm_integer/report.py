"""What the integer rewrite did: per conv2d/matmul, integer (requantize or dequantize epilogue) or float, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .plan import FloatSite, IntegerSite

Lowering = Literal["requantize", "dequantize", "float"]
LOWERINGS: tuple[Lowering, ...] = ("requantize", "dequantize", "float")


@dataclass(frozen=True)
class SiteReport:
    """One conv2d/matmul: how it was lowered, its integer arithmetic, and the reason when not fully integer."""

    op: str
    index: int
    where: str
    lowering: Lowering
    arithmetic: str | None
    reason: str | None

    @classmethod
    def from_site(cls, site: IntegerSite | FloatSite) -> SiteReport:
        if isinstance(site, FloatSite):
            return cls(site.op, site.index, site.where, "float", None, site.reason)
        lowering: Lowering = "requantize" if site.requantized_only else "dequantize"
        return cls(site.op, site.index, site.where, lowering, site.arithmetic, site.note)


@dataclass(frozen=True)
class IntegerReport:
    """All sites of a module in graph order."""

    sites: tuple[SiteReport, ...]

    def count(self, op: str | None = None, lowering: Lowering | None = None) -> int:
        return sum(1 for s in self.sites if (op is None or s.op == op) and (lowering is None or s.lowering == lowering))

    @property
    def integer_count(self) -> int:
        """Sites whose conv/matmul runs on integers (either epilogue)."""
        return len(self.sites) - self.count(lowering="float")

    def summary(self) -> dict[str, dict[str, int]]:
        """``{"conv2d": {"requantize": n, "dequantize": n, "float": n}, "matmul": {...}}``."""
        ops = sorted({s.op for s in self.sites})
        return {op: {lowering: self.count(op, lowering) for lowering in LOWERINGS} for op in ops}

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "sites": [asdict(s) for s in self.sites]}

    def format_table(self) -> str:
        """A headline per op, then one line per site that is not fully integer (requantized sites are the norm)."""
        lines = []
        for op, counts in self.summary().items():
            total = sum(counts.values())
            lines.append(f"{op}: {total - counts['float']}/{total} integer "
                         f"({counts['requantize']} requantized, {counts['dequantize']} to float), "
                         f"{counts['float']} float")
        for s in self.sites:
            if s.lowering != "requantize":
                lines.append(f"  {s.op} #{s.index} {s.lowering}: {s.reason}  [{s.where}]")
        return "\n".join(lines)
