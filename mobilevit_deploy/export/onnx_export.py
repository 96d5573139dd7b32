"""PyTorch → ONNX: export with the dynamo exporter, run the passes, verify against PyTorch, write atomically.

Exporter choice (measured by ``tools/bench/bench_exporters.py`` over the whole zoo): both the TorchScript and the
dynamo exporter export every model correctly; the dynamo exporter is slower (seconds instead of a second) but
writes a static graph without Shape/Gather/Constant chains and is the one PyTorch keeps developing. It writes
weights to an external ``.data`` file when given a path, so we take the in-memory model and write one
self-contained file (external data only above protobuf's 2 GB limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import torch
from torch import nn

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import ExportError
from mobilevit_deploy.quiet import quiet

from .diagnose import describe_export_failure
from .passes import select_passes
from .report import ExportReport, StageRecord
from .verify import Agreement, compare_outputs, run_onnxruntime, seeded_image_batch

SUPPORTED_OPSETS = range(16, 24)
DEFAULT_OPSET = 18
VERIFY_SEEDS = (0, 1)
FP32_TOLERANCE = {"rel_max_diff": 1e-4, "argmax_agreement": 0.999}
FP16_TOLERANCE = {"rel_max_diff": 2e-2, "argmax_agreement": 0.995}
_PROTOBUF_LIMIT = 2**31 - 2**26  # stay clear of protobuf's 2 GB message limit

Log = Callable[[str], None]


def torch_to_onnx(model: nn.Module, input_size: int, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export for a static 1×3×S×S input; raise ``ExportError`` naming the op and module that failed."""
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"unsupported opset {opset}",
                          hint=f"use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}")
    x = torch.zeros(1, 3, input_size, input_size)
    try:
        with quiet("torch.onnx", "onnxscript", level=logging.CRITICAL):
            program = torch.onnx.export(model.eval(), (x,), None, dynamo=True, opset_version=opset,
                                        input_names=["input"], output_names=["logits"], verbose=False)
    except Exception as err:  # the exporter raises many types; turn them into one line
        raise ExportError(describe_export_failure(err, model, x)) from err
    proto = program.model_proto
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:  # the exporter falls back silently when it cannot convert versions
        raise ExportError(f"the exporter produced opset {got}, not the requested {opset}",
                          hint=f"use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}")
    return proto


class _Verifier:
    """PyTorch reference outputs on fixed seeded inputs, computed once, compared after every stage."""

    def __init__(self, model: nn.Module, input_size: int) -> None:
        self.inputs = [seeded_image_batch(input_size, seed) for seed in VERIFY_SEEDS]
        with torch.no_grad():
            self.refs = [model(torch.from_numpy(x)).numpy() for x in self.inputs]

    def check(self, proto: onnx.ModelProto) -> Agreement:
        data = proto.SerializeToString()
        results = [compare_outputs(run_onnxruntime(data, x), ref) for x, ref in zip(self.inputs, self.refs,
                                                                                    strict=True)]
        return Agreement(max(r.rel_max_diff for r in results), min(r.argmax_agreement for r in results))


def _within(agreement: Agreement, tolerance: dict[str, float]) -> bool:
    return agreement.ok(tolerance["rel_max_diff"], tolerance["argmax_agreement"])


def export_onnx(model: nn.Module, output: str | Path, input_size: int, opset: int = DEFAULT_OPSET,
                fp16: bool = False, skip_passes: frozenset[str] | set[str] = frozenset(), verify_each: bool = True,
                log: Log | None = None, exported: onnx.ModelProto | None = None) -> ExportReport:
    """Export ``model``, run the passes, verify, and write ``output`` plus ``<stem>.report.json`` atomically.

    With ``verify_each`` the ONNX Runtime check runs after the export and after every pass, so a failure names
    the pass after which outputs diverged; without it (cheap mode) only after the whole list. ``exported``
    reuses a graph ``torch_to_onnx`` already produced for this model, size and opset (the compile's op scan).
    """
    log = log or (lambda _msg: None)
    output = Path(output)
    info = getattr(model, "info", None)
    if info is not None:
        info.check_input_size(input_size)
    passes = select_passes(set(skip_passes), fp16)
    report = ExportReport(model=info.name if info else type(model).__name__, input_size=input_size, opset=opset,
                          exporter="torch.onnx dynamo", tolerance=FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
    start = time.perf_counter()
    verifier = _Verifier(model.eval(), input_size)

    log(f"exporting {report.model} at {input_size}x{input_size}, opset {opset}")
    tick = time.perf_counter()
    proto = exported if exported is not None else torch_to_onnx(model, input_size, opset)
    if verify_each:
        _record(report, "export", proto, time.perf_counter() - tick, verifier.check(proto), FP32_TOLERANCE, log)
    else:
        report.stages.append(StageRecord("export", time.perf_counter() - tick, len(proto.graph.node)))
    for p in passes:
        tick = time.perf_counter()
        proto = p.run(proto)
        seconds = time.perf_counter() - tick
        if verify_each:
            tolerance = FP16_TOLERANCE if p.optional else FP32_TOLERANCE
            _record(report, p.name, proto, seconds, verifier.check(proto), tolerance, log)
        else:
            report.stages.append(StageRecord(p.name, seconds, len(proto.graph.node)))
    if verify_each:
        report.agreement = report.stages[-1].agreement
    else:
        report.agreement = verifier.check(proto)
        if not _within(report.agreement, report.tolerance):
            raise _diverged("the pass list", report.agreement)
    report.describe_model(proto)
    report.total_seconds = time.perf_counter() - start
    _write(proto, output, report)
    return report


def _record(report: ExportReport, name: str, proto: onnx.ModelProto, seconds: float, agreement: Agreement,
            tolerance: dict[str, float], log: Log) -> None:
    report.stages.append(StageRecord(name, seconds, len(proto.graph.node), agreement))
    log(f"  {name:<16} {seconds:6.2f}s  {len(proto.graph.node):4d} nodes  "
        f"rel diff {agreement.rel_max_diff:.1e}  argmax {agreement.argmax_agreement:.2%}")
    if not _within(agreement, tolerance):
        raise _diverged(f"pass '{name}'" if name != "export" else "the export itself", agreement)


def _diverged(where: str, agreement: Agreement) -> ExportError:
    return ExportError(
        f"outputs diverged from PyTorch after {where}: relative max diff {agreement.rel_max_diff:.2e}, "
        f"argmax agreement {agreement.argmax_agreement:.2%}",
        hint="rerun with --skip-pass NAME to confirm, and please report it")


def report_path(output: Path) -> Path:
    """Where the export report of ``output`` goes: ``model.onnx`` → ``model.report.json``."""
    return output.with_suffix(".report.json")


def _write(proto: onnx.ModelProto, output: Path, report: ExportReport) -> None:
    """The model, then its report, each atomically; a failure removes the model again."""
    external = proto.ByteSize() > _PROTOBUF_LIMIT
    with atomic_path(output) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=external,
                        location=f"{output.name}.data" if external else None)
        report.path = str(output)
        report.size_bytes = tmp.stat().st_size + (Path(f"{output}.data").stat().st_size if external else 0)
        with atomic_path(report_path(output)) as tmp_report:
            report.write_json(tmp_report)


