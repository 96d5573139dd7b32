"""``export_integer_onnx``: an ``IntSegmenter`` → one integer-only ONNX file, checked, bit-exact, written atomically.

Steps: build the graph (``segmenter``) → the integer-only check (``passes.integer_only``) → strict shape inference
and the full checker (``passes.infer_shapes``) → ONNX Runtime on seeded images, whose int8 logits must equal the
PyTorch integer model's bit for bit (and the float logits too) → write the model and ``<stem>.report.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.quant.int_segmenter import IntSegmenter

from ..onnx_export import report_path
from ..passes import infer_shapes, integer_only
from .graph import GraphBuilder
from .segmenter import INTEGER_OUTPUT_NAME, emit_segmenter

SUPPORTED_OPSETS = range(19, 24)  # BitwiseAnd and ReduceMax's axes input need 18; tested at 21
DEFAULT_OPSET = 21
VERIFY_SEEDS = (0, 1)

Log = Callable[[str], None]


@dataclass
class IntegerExportReport:
    """What the export wrote and proved: graph size, element types, and the bit-exact check against PyTorch."""

    path: str = ""
    input_size: tuple[int, int] = (0, 0)
    batch: int = 1
    opset: int = DEFAULT_OPSET
    nodes: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    element_types: dict[str, int] = field(default_factory=dict)
    weight_bytes: int = 0
    size_bytes: int = 0
    verified_images: int = 0
    mismatched_logits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def build_integer_onnx(model: IntSegmenter, batch: int = 1, opset: int = DEFAULT_OPSET,
                       integer_output: bool = False) -> onnx.ModelProto:
    """The integer-only graph of ``model`` for a static batch. ``integer_output`` adds the int8 logits before the
    final dequantization as a second output (``logits_int8``), for bit-exact comparisons."""
    if not isinstance(model, IntSegmenter):
        raise ExportError(f"the integer-only export takes an IntSegmenter, got {type(model).__name__}",
                          hint="convert the float model first: quant.int_segmenter.convert_segmenter(model, calib)")
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"unsupported opset {opset} for the integer-only export",
                          hint=f"use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ExportError(f"batch must be a positive int, got {batch!r}")
    g = GraphBuilder()
    h, w = model.input_size
    with torch.no_grad():
        logits, logits_int = emit_segmenter(g, model, batch)
    shape = [batch, model.num_classes, h, w]
    outputs = [(logits, shape)] + ([(logits_int, shape)] if integer_output else [])
    return g.model(outputs, opset, name="isegmenter_integer_only",
                   doc=f"integer-only I-Segmenter, {h}x{w} input; int8 logits scale {model.output_scale!r}")


def onnxruntime_runner(model: onnx.ModelProto | str | Path) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``f(image) -> {output name: array}`` for an integer-only ONNX model under ONNX Runtime (CPU, one thread).
    Creating the session takes seconds for the ~6000-node graph, so it is made once."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return lambda x: dict(zip(names, session.run(None, {input_name: x}), strict=True))


def _verify(proto: onnx.ModelProto, model: IntSegmenter, batch: int) -> tuple[int, int]:
    """(images, mismatched int8 logits) over the seeded inputs; raises when ONNX Runtime differs from PyTorch."""
    h, w = model.input_size
    mismatched = 0
    run = onnxruntime_runner(proto)
    for seed in VERIFY_SEEDS:
        x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)).numpy()
        got = run(x)
        with torch.no_grad():
            want = model.forward_int(model.quantize_input(torch.from_numpy(x))).numpy()
        mismatched += int((got[INTEGER_OUTPUT_NAME] != want).sum())
    if mismatched:
        raise ExportError(f"ONNX Runtime's integer logits differ from the PyTorch integer model in {mismatched} "
                          f"of {len(VERIFY_SEEDS) * want.size} values (they must be bit-identical)",
                          hint="this is a bug in the integer-only exporter; please report it with the model")
    return len(VERIFY_SEEDS) * batch, mismatched


def export_integer_onnx(model: IntSegmenter, output: str | Path, *, batch: int = 1, opset: int = DEFAULT_OPSET,
                        verify: bool = True, log: Log | None = None) -> IntegerExportReport:
    """Write the integer-only ONNX of ``model`` to ``output`` (and its report beside it); see the module doc."""
    say = log or (lambda _msg: None)
    output = Path(output)
    report = IntegerExportReport(input_size=tuple(model.input_size) if isinstance(model, IntSegmenter) else (0, 0),
                                 batch=batch, opset=opset)
    tick = time.perf_counter()
    proto = build_integer_onnx(model, batch, opset, integer_output=verify)
    report.seconds["build"] = time.perf_counter() - tick
    say(f"[integer-only] built {len(proto.graph.node)} nodes")

    tick = time.perf_counter()
    checked = integer_only.check_integer_only(proto)
    proto = infer_shapes.run(proto)
    report.seconds["check"] = time.perf_counter() - tick
    report.element_types, report.ops, report.nodes = checked.element_types, checked.ops, len(proto.graph.node)
    say(f"[integer-only] check passed: {checked.tensors} tensors, {checked.element_types}")

    if verify:
        tick = time.perf_counter()
        report.verified_images, report.mismatched_logits = _verify(proto, model, batch)
        report.seconds["verify"] = time.perf_counter() - tick
        say(f"[integer-only] ONNX Runtime bit-identical to PyTorch on {report.verified_images} image(s)")
        proto = _drop_integer_output(proto)
    report.weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp))
        report.path, report.size_bytes = str(output), tmp.stat().st_size
        with atomic_path(report_path(output)) as tmp_report:
            tmp_report.write_text(report.to_json())
    say(f"[integer-only] wrote {output} ({report.size_bytes / 1024:.0f} KB)")
    return report


def _drop_integer_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model with only the float logits as output (the int8 logits stay as the dequantization's input)."""
    kept = [o for o in proto.graph.output if o.name != INTEGER_OUTPUT_NAME]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)
    return proto
