"""The module pass: QDQ float conv2d/matmul in a Relax module → integer conv2d/matmul with requantization.

TVM 0.27 imports a QDQ ONNX model as float simulation (``dequantize → float conv → quantize``) and has no pass that
turns it into integer arithmetic; this one does, on the module ``from_onnx`` returns and before ``tvm.compile``.
Planning (``plan``) reads the original function; the mutator below adds each lowered site's integer accumulator
next to its float op and replaces the bindings of the site's outputs (each quantize it feeds, and the op or bias add
when some consumer needs the float value) with the epilogues (``emit``); the dead float chain is then removed.
Nothing is folded beforehand: ``FoldConstant`` would turn the int8 weights into float ones.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .emit import emit_accumulator, emit_output
from .plan import IntegerSite, SiteOutput, plan_function
from .report import IntegerReport, SiteReport


@relax.expr_functor.mutator
class _IntegerRewriter(relax.PyExprMutator):
    """Adds each site's accumulator after its float op, replaces its outputs' bindings; copies everything else.

    The float op itself is still copied (a bias add copied after it may read it); once every consumer reads the
    integer code instead, ``remove_all_unused`` drops it with its dequantizes.
    """

    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.sites: dict[relax.Var, IntegerSite] = {}  # by op var
        self.outputs: dict[relax.Var, tuple[IntegerSite, SiteOutput]] = {}  # by the var an output replaces
        self.accumulators: dict[relax.Var, relax.Var] = {}

    def plan(self, sites: list[IntegerSite]) -> None:
        self.sites = {s.op_var: s for s in sites}
        self.outputs = {o.var: (s, o) for s in sites for o in s.outputs}
        self.accumulators = {}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        var = binding.var
        if var not in self.outputs:
            super().visit_var_binding_(binding)
        if var in self.sites:
            self.accumulators[var] = emit_accumulator(self.builder_, self.sites[var], self.visit_expr)
        if var in self.outputs:
            site, output = self.outputs[var]
            is_output = not isinstance(var, relax.DataflowVar) and self.builder_.current_block_is_dataflow()
            new = emit_output(self.builder_, site, output, self.accumulators[site.op_var], is_output)
            self.set_var_remap(var, new)


def lower_qdq_to_integer(mod: tvm.IRModule) -> tuple[tvm.IRModule, IntegerReport]:
    """Rewrite every Relax function of ``mod``; return the new module and the per-site report."""
    rewriter = _IntegerRewriter(mod)
    reports: list[SiteReport] = []
    for gvar, func in mod.functions_items():
        if not isinstance(func, relax.Function):
            continue
        sites = plan_function(func)
        reports.extend(SiteReport.from_site(s) for s in sites)
        rewriter.plan([s for s in sites if isinstance(s, IntegerSite)])
        if rewriter.sites:
            new_func = relax.analysis.remove_all_unused(rewriter.visit_expr(func))
            rewriter.builder_.update_func(gvar, new_func)
    return rewriter.builder_.get(), IntegerReport(tuple(reports))


@tvm.transform.module_pass(opt_level=0, name="QDQToInteger")
class QDQToInteger:
    """``lower_qdq_to_integer`` as a pass for ``tvm.transform.Sequential``; ``report`` holds the last run's report."""

    def __init__(self) -> None:
        self.report: IntegerReport | None = None

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        new_mod, self.report = lower_qdq_to_integer(mod)
        return new_mod
