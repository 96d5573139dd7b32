"""The export report written next to the model: op histogram, parameters, size, opset, verification, pass times."""

from __future__ import annotations

import collections
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .verify import Agreement


@dataclass
class StageRecord:
    """One stage of the export (the exporter itself, or a pass) and how the model looked after it."""

    name: str
    seconds: float
    nodes: int
    agreement: Agreement | None = None


@dataclass
class ExportReport:
    model: str
    input_size: int
    opset: int
    exporter: str
    path: str = ""
    size_bytes: int = 0
    params: int = 0
    op_histogram: dict[str, int] = field(default_factory=dict)
    stages: list[StageRecord] = field(default_factory=list)
    agreement: Agreement | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    def describe_model(self, model: onnx.ModelProto) -> None:
        counts = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                                     for n in model.graph.node)
        self.op_histogram = dict(counts.most_common())
        self.params = int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))

    def to_dict(self) -> dict:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def format_table(self) -> str:
        lines = [f"{'stage':<18}{'seconds':>9}{'nodes':>7}{'rel max diff':>14}{'argmax agree':>14}"]
        for s in self.stages:
            diff = f"{s.agreement.rel_max_diff:.1e}" if s.agreement else "-"
            agree = f"{s.agreement.argmax_agreement:.2%}" if s.agreement else "-"
            lines.append(f"{s.name:<18}{s.seconds:>9.2f}{s.nodes:>7}{diff:>14}{agree:>14}")
        ops = ", ".join(f"{k} {v}" for k, v in self.op_histogram.items())
        lines.append(f"ops: {ops}")
        lines.append(f"{self.params / 1e6:.3f}M parameters, {self.size_bytes / 1e6:.2f} MB, opset {self.opset}")
        return "\n".join(lines)
