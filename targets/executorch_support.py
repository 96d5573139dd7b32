"""Which ops ExecuTorch's XNNPACK partitioner leaves outside the delegate (they run on portable kernels).

The decision is taken by the real pipeline, not a copy of its rules: ``to_edge_transform_and_lower`` with an
``XnnpackPartitioner`` builds the edge program exactly as a real lowering does (the partitioner also decides what
is kept from decomposition), the partitioner tags it, and the scan stops right there, before the tagged nodes
are compiled, since XNNPACK's preprocessing is most of a lowering's time. Untagged op nodes are what a lowered
program runs outside the delegate. The edge program gets the same rewrites as in ``build_executorch``
(``executorch_passes``), so the scan names what a build leaves outside, not what the raw export would.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from mobilevit_deploy.errors import DeployError

from .support import ROOT_MODULE, NodeFinding, SupportReport, build_report

_WHY_LOGGER = "executorch.backends.xnnpack.partition"
"""Parent of the loggers XNNPACK's partitioner configs tell why a node was rejected through (``WhyNoPartition``)."""
_PORTABLE = "runs on portable kernels"


class _Tagged(Exception):  # noqa: N818 (not an error: it carries the tagged program out of the lowering)
    """Raised by the recording partitioner to stop the lowering once the nodes are tagged."""

    def __init__(self, program: Any, why: dict[str, str]) -> None:
        super().__init__("tagged")
        self.program = program
        self.why = why


class _WhyCollector(logging.Handler):
    """Keeps the first reason XNNPACK's configs log for rejecting each node, by node name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        node, reason = getattr(record.msg, "node", None), getattr(record.msg, "reason", None)
        if node is not None and reason:
            self.reasons.setdefault(node.name, str(reason))


@contextlib.contextmanager
def _collect_why() -> Iterator[_WhyCollector]:
    logger = logging.getLogger(_WHY_LOGGER)
    level, propagate = logger.level, logger.propagate
    collector = _WhyCollector()
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the reasons are for the report, not for the user's console
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(level)
        logger.propagate = propagate


def scan_torch_for_executorch(model: nn.Module, example_inputs: tuple[Any, ...], rewrite: bool = True
                              ) -> SupportReport:
    """Export ``model`` (in eval mode) and report the ops XNNPACK will not delegate, with their module paths.

    ``rewrite=False`` skips ``executorch_passes``: what the plain XNNPACK partitioner would leave outside.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.exir.backend.canonical_partitioners.config_partitioner import format_target_name

    from .executorch_passes import xnnpack_friendly_passes

    class RecordingPartitioner(XnnpackPartitioner):
        def partition(self, exported_program: Any) -> Any:
            with _collect_why() as why:
                result = super().partition(exported_program)
            raise _Tagged(result.tagged_exported_program, why.reasons)

    partitioner = RecordingPartitioner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(model.eval(), tuple(example_inputs))
        except Exception as err:  # torch.export raises many types; name the cause in one line
            cause = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise DeployError(f"torch.export of {type(model).__name__} failed: {cause}") from err
        try:
            passes = xnnpack_friendly_passes() if rewrite else None
            to_edge_transform_and_lower(program, transform_passes=passes, partitioner=[partitioner])
        except _Tagged as tagged:
            graph, why = tagged.program.graph_module.graph, tagged.why
        else:
            raise RuntimeError("to_edge_transform_and_lower never called the XNNPACK partitioner")
    configs = partitioner.target_partitioner_configs
    findings = []
    for node in graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        op = getattr(node.target, "__name__", str(node.target))
        reason = None
        if "delegation_tag" not in node.meta:
            if format_target_name(op) not in configs:
                reason = f"no XNNPACK config for this op ({_PORTABLE})"
            else:
                reason = f"XNNPACK rejected it: {why.get(node.name, 'config constraints not met')} ({_PORTABLE})"
        findings.append(NodeFinding(op, _module_path(node), reason))
    return build_report("executorch", findings)


def _module_path(node: torch.fx.Node) -> str:
    """The innermost module of the node's ``nn_module_stack`` (kept by export and the edge passes)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ROOT_MODULE
    path, _cls = list(stack.values())[-1]
    return str(path)
