"""``export_qdq_onnx``: a quantization table and its (BN-folded) model → one QDQ ONNX file, verified, atomic.

Steps: check the table against the model (``quant.api.check_table``: folding state, module paths, channel counts)
and the storage formats against the opset → swap the table's layers for export modules (``modules``) → export
with the dynamo exporter, translating our two custom ops into standard ONNX (``onnx_ops``) → the usual export
passes (identity removal, constant folding, BN folding, static pooling, strict shape inference + checker) → ≤4-bit
weights to INT4 storage when the opset allows → ONNX Runtime vs the fake-quant model (``verify``) → write the model
and ``<stem>.report.json`` atomically.

Formats (documented choices): activations as uint8 (asymmetric, the table's [0, 2^B − 1] codes) or int8
(symmetric); weights int8 (symmetric) or uint8 (asymmetric) per output channel, INT4/UINT4 for ≤4-bit weights at
opset ≥ 21; biases stay float (the fake-quant model adds them in float; ONNX Runtime fuses a QDQ conv either way).
"""

from __future__ import annotations

import ast
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.quant.api import QuantizedModel, apply_table, check_table
from mobilevit_deploy.quant.table import QuantTable, TensorRole
from mobilevit_deploy.quiet import quiet

from ..diagnose import describe_export_failure
from ..onnx_export import report_path
from ..passes import select_passes
from ..verify import seeded_image_batch
from .int4 import INT4_OPSET, store_weights_as_int4
from .modules import qdq_module
from .onnx_ops import translations
from .verify import QDQAgreement, compare_with_fake_quant

SUPPORTED_OPSETS = range(17, 24)  # per-axis Q/DQ needs 13; the exporter and our passes are tested from 17 up
DEFAULT_OPSET = 21  # the first with INT4 weights
VERIFY_SEEDS = (0, 1)
# ORT vs fake-quant: float accumulation order differs, so a few codes flip (see verify.py); a wrong parameter or a
# misplaced quantizer gives < 20 dB. The tests hold tighter bounds on real images.
TOLERANCE = {"sqnr_db": 30.0, "argmax_agreement": 0.98}

Log = Callable[[str], None]


@dataclass
class QDQReport:
    """What the export did: formats, sizes, stage times and the agreement with the fake-quant model."""

    model: str
    input_size: int
    opset: int
    path: str = ""
    size_bytes: int = 0
    float_weight_bytes: int = 0  # the same model's weights as float32 (what an fp32 file stores)
    bn_folded: bool = False
    points: dict[str, int] = field(default_factory=dict)  # kind → count
    weight_storage: dict[str, int] = field(default_factory=dict)  # ONNX element type → weight tensors
    op_histogram: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    agreement: QDQAgreement | None = None
    tolerance: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["agreement"] = self.agreement.to_dict() if self.agreement else None
        return d


def _check_formats(table: QuantTable, opset: int, int4_weights: bool | None) -> bool:
    """Whether ≤4-bit weights are stored as INT4; refuse what ONNX cannot carry, naming the points."""
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"unsupported opset {opset} for QDQ export",
                          hint=f"use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}")
    if not int4_weights:
        return int4_weights is None and opset >= INT4_OPSET
    if opset < INT4_OPSET:
        raise ExportError(f"INT4 weights need opset ≥ {INT4_OPSET}, not {opset}",
                          hint=f"export with opset={INT4_OPSET}, or int4_weights=False for int8 storage")
    wide = [p.module for p in table if p.role is TensorRole.WEIGHT and p.bits > 4]
    if wide:
        raise ExportError(f"{len(wide)} weight point(s) have more than 4 bits and cannot be stored as INT4, "
                          f"e.g. {', '.join(wide[:3])}", hint="int4_weights=None stores only ≤4-bit weights as INT4")
    return True


def _export(model: nn.Module, input_size: int, opset: int) -> onnx.ModelProto:
    x = torch.zeros(1, 3, input_size, input_size)
    try:
        with quiet("torch.onnx", "onnxscript", level=logging.CRITICAL):
            program = torch.onnx.export(model, (x,), None, dynamo=True, opset_version=opset,
                                        custom_translation_table=translations(opset), input_names=["input"],
                                        output_names=["logits"], verbose=False)
    except Exception as err:  # the exporter raises many types; turn them into one line
        raise ExportError(describe_export_failure(err, model, x)) from err
    return program.model_proto


def _compact_metadata(proto: onnx.ModelProto) -> None:
    """Keep one ``module`` entry (the module path a node came from) instead of the exporter's per-node metadata:
    its FX dump repeats every point's JSON spec and stack traces, ~1 MB on TopFormer-T, 70 % of an int8 file."""
    for node in proto.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        del node.metadata_props[:]
        try:
            path = ast.literal_eval(scopes)[-2] if scopes else ""
        except (ValueError, SyntaxError, IndexError):
            path = ""
        if path:
            node.metadata_props.add(key="module", value=path)


def _int4_names(table: QuantTable) -> set[str]:
    """Initializer names of the ≤4-bit weight codes (the exporter names buffers by module path)."""
    return {f"{p.module}.weight_codes" for p in table if p.role is TensorRole.WEIGHT and p.bits <= 4}


def _weight_storage(proto: onnx.ModelProto) -> dict[str, int]:
    names = {n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    kinds = collections.Counter(onnx.TensorProto.DataType.Name(t.data_type) for t in proto.graph.initializer
                                if t.name in names and t.name.endswith(".weight_codes"))
    return dict(kinds)


def export_qdq_onnx(model: nn.Module, table: QuantTable, output: str | Path, input_size: int,
                    opset: int = DEFAULT_OPSET, *, int4_weights: bool | None = None, verify: bool = True,
                    inputs: torch.Tensor | None = None, log: Log | None = None) -> QDQReport:
    """Export ``model`` quantized by ``table`` as a QDQ ONNX file at ``output`` for a 1×3×S×S input.

    ``model`` must be in the folding state the table was made in (a table made on ``fold_batchnorm(model)``
    needs the folded model). ``int4_weights``: None stores ≤4-bit weights as INT4 when the opset allows (≥ 21),
    True requires it, False keeps int8/uint8 storage. ``inputs`` (N×3×S×S, default two seeded noise images) are
    run through ONNX Runtime and the fake-quant model; outside ``TOLERANCE`` the export fails and writes nothing.
    """
    log = log or (lambda _msg: None)
    output = Path(output)
    start = time.perf_counter()
    if isinstance(model, QuantizedModel):
        raise ExportError("export_qdq_onnx takes the float model and the table, not the fake-quant QuantizedModel",
                          hint="pass the model you quantized (BN-folded) and quantized.table")
    info = getattr(model, "info", None)
    if info is not None:
        info.check_input_size(input_size)
    check_table(model, table)
    int4 = _check_formats(table, opset, int4_weights)
    report = QDQReport(model=info.name if info else type(model).__name__, input_size=input_size, opset=opset,
                       bn_folded=table.bn_folded, tolerance=dict(TOLERANCE),
                       points=dict(collections.Counter(p.kind.value for p in table)),
                       float_weight_bytes=4 * sum(p.numel() for p in model.parameters()))

    def stage(name: str, tick: float) -> None:
        report.stage_seconds[name] = round(time.perf_counter() - tick, 3)
        log(f"  {name:<12} {report.stage_seconds[name]:6.2f}s")

    log(f"exporting {report.model} ({len(table)} quantization points) as QDQ ONNX, opset {opset}")
    tick = time.perf_counter()
    proto = _export(apply_table(model, table, factory=qdq_module), input_size, opset)
    _compact_metadata(proto)
    stage("export", tick)
    for p in select_passes():
        tick = time.perf_counter()
        proto = p.run(proto)
        stage(p.name, tick)
    if int4:
        store_weights_as_int4(proto, _int4_names(table))
        onnx.checker.check_model(proto, full_check=True)
    report.weight_storage = _weight_storage(proto)
    report.op_histogram = dict(collections.Counter(n.op_type for n in proto.graph.node).most_common())
    if verify:
        tick = time.perf_counter()
        if inputs is None:
            inputs = torch.from_numpy(np.concatenate([seeded_image_batch(input_size, s) for s in VERIFY_SEEDS]))
        report.agreement = compare_with_fake_quant(proto.SerializeToString(), apply_table(model, table), inputs)
        stage("verify", tick)
        a = report.agreement
        log(f"  ORT vs fake-quant: max |Δ| {a.max_abs_diff:.3g}, SQNR {a.sqnr_db:.1f} dB, "
            f"argmax agreement {a.argmax_agreement:.2%}")
        if not a.ok(TOLERANCE):
            raise ExportError(f"the QDQ model diverges from the fake-quant model: SQNR {a.sqnr_db:.1f} dB, argmax "
                              f"agreement {a.argmax_agreement:.2%} (need ≥ {TOLERANCE['sqnr_db']} dB, "
                              f"≥ {TOLERANCE['argmax_agreement']:.0%})", hint="please report it with the table")
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp))
        report.path, report.size_bytes = str(output), tmp.stat().st_size
        report.stage_seconds["total"] = round(time.perf_counter() - start, 3)
        with atomic_path(report_path(output)) as tmp_report:
            tmp_report.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report
