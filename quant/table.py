"""The quantization table: one row per quantization point, saved as JSON; every exporter reads it (DESIGN.md seam).

A row names the tensor (``module`` path + ``role`` + ``input_index``) and carries everything needed to reproduce
its integers with ``primitives``: kind, bits, granularity, scale / zero point per group, AdaLog's q and shift,
SULQ's η, log-domain range and step count. Floats round-trip exactly (JSON keeps Python's shortest repr).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mobilevit_deploy.atomic import atomic_path

from .enums import QuantKind, SULQSteps
from .errors import QuantConfigError, QuantTableError
from .granularity import Granularity, PerChannel, PerHead, PerTensor

FORMAT = "mobilevit-deploy.quant-table"
VERSION = 1


class TensorRole(StrEnum):
    """Which tensor of the module a point quantizes."""

    WEIGHT = "weight"
    INPUT = "input"  # ``input_index`` tells which input (matmul A / B)
    OUTPUT = "output"
    SOFTMAX = "softmax"  # attention probabilities (the output of an nn.Softmax)
    GELU_OUT = "gelu_out"


@dataclass
class QuantPoint:
    """One quantization point. Uniform kinds use scale/zero_point; ``LOG2``/``ADALOG`` use scale (+ ``log_q``,
    ``shift``); ``SULQ`` uses ``eta``, ``log_min``, ``log_max`` and ``sulq_steps``."""

    module: str
    role: TensorRole
    kind: QuantKind
    bits: int
    granularity: Granularity = field(default_factory=PerTensor)
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    input_index: int = 0
    log_q: int | None = None
    shift: float | None = None  # AdaLog post-GELU shift (quantizes x + shift)
    eta: float | None = None
    log_min: float | None = None
    log_max: float | None = None
    sulq_steps: SULQSteps | None = None
    shift_folded: bool = False  # AdaLog post-GELU: −shift·ΣW_q folded into the next layer's bias (§4.2 reparam_bias)

    def __post_init__(self) -> None:
        self.role, self.kind = TensorRole(self.role), QuantKind(self.kind)
        where = f"{self.module or '<root>'}:{self.role.value}[{self.input_index}]"
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise QuantConfigError(f"{where}: bits={self.bits!r} must be an int in 2..8")
        if not isinstance(self.granularity, PerTensor | PerChannel | PerHead):
            raise QuantConfigError(f"{where}: granularity {self.granularity!r} is not a granularity")
        self.scale = [float(s) for s in self.scale]
        self.zero_point = [int(z) for z in self.zero_point]
        if any(not math.isfinite(s) or s <= 0 for s in self.scale):
            raise QuantConfigError(f"{where}: scales must be finite and positive")
        if self.kind is QuantKind.SULQ:
            self._require(where, "eta", "log_min", "log_max", "sulq_steps")
            self.sulq_steps = SULQSteps(self.sulq_steps)
            return
        expected = {PerTensor: 1, PerHead: getattr(self.granularity, "num_heads", 0)}.get(type(self.granularity))
        if not self.scale or (expected is not None and len(self.scale) != expected):
            raise QuantConfigError(f"{where}: {len(self.scale)} scales do not fit {self.granularity}")
        if self.kind is QuantKind.UNIFORM_ASYM and len(self.zero_point) != len(self.scale):
            raise QuantConfigError(f"{where}: asymmetric uniform needs one zero point per scale")
        if self.kind is QuantKind.UNIFORM_SYM and any(self.zero_point):
            raise QuantConfigError(f"{where}: symmetric uniform has zero points of 0")
        if self.kind is QuantKind.ADALOG:
            self._require(where, "log_q")

    def _require(self, where: str, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise QuantConfigError(f"{where}: {self.kind.value} needs {', '.join(missing)}")

    @property
    def key(self) -> tuple[str, str, int]:
        return self.module, self.role.value, self.input_index

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"module": self.module, "role": self.role.value, "input_index": self.input_index,
                               "kind": self.kind.value, "bits": self.bits,
                               "granularity": granularity_to_json(self.granularity),
                               "scale": self.scale, "zero_point": self.zero_point}
        for name in ("log_q", "shift", "eta", "log_min", "log_max"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.sulq_steps is not None:
            out["sulq_steps"] = self.sulq_steps.value
        if self.shift_folded:
            out["shift_folded"] = True
        return out

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> QuantPoint:
        row = dict(row)
        row["granularity"] = granularity_from_json(row.get("granularity", {"type": "per_tensor"}))
        return cls(**row)


def granularity_to_json(g: Granularity) -> dict[str, Any]:
    if isinstance(g, PerChannel):
        return {"type": "per_channel", "axis": g.axis}
    if isinstance(g, PerHead):
        return {"type": "per_head", "axis": g.axis, "num_heads": g.num_heads}
    return {"type": "per_tensor"}


def granularity_from_json(d: dict[str, Any]) -> Granularity:
    kind = d.get("type")
    if kind == "per_tensor":
        return PerTensor()
    if kind == "per_channel":
        return PerChannel(d["axis"])
    if kind == "per_head":
        return PerHead(d["axis"], d["num_heads"])
    raise QuantConfigError(f"unknown granularity {d!r}")


class QuantTable:
    """Ordered quantization points, unique by (module, role, input_index).

    ``bn_folded``: the points were made on a model whose Conv2d → BatchNorm2d pairs were folded
    (``quant.fold.fold_batchnorm``), so their weight grids only fit a folded model (``api.apply_table`` checks)."""

    def __init__(self, points: Iterable[QuantPoint] = (), *, bn_folded: bool = False) -> None:
        self._points: dict[tuple[str, str, int], QuantPoint] = {}
        self.bn_folded = bn_folded
        for p in points:
            self.add(p)

    def add(self, point: QuantPoint) -> None:
        if point.key in self._points:
            raise QuantConfigError(f"duplicate quantization point {point.key}")
        self._points[point.key] = point

    def get(self, module: str, role: TensorRole | str, input_index: int = 0) -> QuantPoint:
        return self._points[(module, TensorRole(role).value, input_index)]

    def __iter__(self) -> Iterator[QuantPoint]:
        return iter(self._points.values())

    def __len__(self) -> int:
        return len(self._points)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantTable) and self.bn_folded == other.bn_folded and list(self) == list(other)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "bn_folded": self.bn_folded,
                "points": [p.to_json() for p in self]}

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (a crash leaves the old file or none, never half a table)."""
        path = Path(path)
        text = json.dumps(self.to_json(), indent=1, allow_nan=False)
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> QuantTable:
        """Read a table written by ``save``; any problem is a ``QuantTableError`` naming the file and the row."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise QuantTableError(f"quantization table {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise QuantTableError(f"quantization table {path} is not readable JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise QuantTableError(f"{path} is not a quantization table (format should be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise QuantTableError(f"{path}: table version {data.get('version')!r} is not supported (want {VERSION})",
                                  hint="re-run quantization with this version of mobilevit-deploy")
        rows = data.get("points")
        if not isinstance(rows, list):
            raise QuantTableError(f"{path}: 'points' must be a list")
        bn_folded = data.get("bn_folded", False)  # absent in tables written before BN folding existed
        if not isinstance(bn_folded, bool):
            raise QuantTableError(f"{path}: 'bn_folded' must be true or false, got {bn_folded!r}")
        table = cls(bn_folded=bn_folded)
        for i, row in enumerate(rows):
            try:
                if not isinstance(row, dict):
                    raise TypeError("row is not an object")
                table.add(QuantPoint.from_json(row))
            except (QuantConfigError, TypeError, ValueError, KeyError) as exc:
                raise QuantTableError(f"{path}: point {i} is malformed: {exc}") from None
        return table
