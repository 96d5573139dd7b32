"""Evidence of integer arithmetic: conv2d/matmul types in a Relax module, in its legalized TIR, and in machine code.

Three views, because each can lie alone: the Relax op may say int8 while legalization casts to float, the TIR may be
integer while LLVM emits scalar code; the disassembly of the built library shows what the CPU will execute
(``sdot``/``udot`` dot products, NEON integer multiplies).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm import relax

from mobilevit_deploy.errors import DeployError

from .plan import SITE_OPS

OBJDUMP = "aarch64-linux-gnu-objdump"
DOT_PRODUCT = ("sdot", "udot", "usdot", "sudot")
MATRIX_MULTIPLY = ("smmla", "ummla", "usmmla")
NEON_INT_MULTIPLY = ("mul", "mla", "mls", "smull", "smull2", "umull", "umull2", "smlal", "smlal2", "umlal",
                     "umlal2", "sqdmulh", "sqrdmulh")
# a vector operand (v3.4s, v1.16b, v2.4b[1]); scalar mul/madd on x/w registers are not NEON
_VECTOR_INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\s+(?:[0-9a-f]{8}\s+)?([a-z0-9.]+)\s+v\d+\.", re.MULTILINE)


@dataclass(frozen=True)
class OpTypes:
    """One conv2d/matmul: its input and output element types."""

    op: str
    inputs: tuple[str, ...]
    output: str

    @property
    def integer(self) -> bool:
        return self.output.startswith("int") and all(t.startswith(("int", "uint")) for t in self.inputs)


def relax_op_types(mod: tvm.IRModule) -> list[OpTypes]:
    """Every Relax conv2d/matmul call of every Relax function, in visiting order."""
    found: list[OpTypes] = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Call) and str(getattr(expr.op, "name", "")) in SITE_OPS:
            inputs = tuple(str(a.ty.dtype) for a in expr.args[:2])
            found.append(OpTypes(SITE_OPS[str(expr.op.name)], inputs, str(expr.ty.dtype)))

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return found


def tir_kernel_types(mod: tvm.IRModule) -> list[OpTypes]:
    """Legalize ``mod`` and list the conv2d/matmul PrimFuncs with their buffer types (inputs..., output)."""
    legalized = relax.transform.LegalizeOps()(mod)
    found = []
    for gvar, func in legalized.functions_items():
        name = str(gvar.name_hint)
        op = next((o for o in ("conv2d", "matmul") if name.startswith(o)), None)
        if op is None or not isinstance(func, tvm.tirx.PrimFunc):
            continue
        dtypes = [str(p.ty.dtype) for p in func.params]  # buffer parameters: inputs, then the output
        found.append(OpTypes(op, tuple(dtypes[:-1]), dtypes[-1]))
    return found


def count_instructions(library: str | Path, objdump: str = OBJDUMP) -> Counter[str]:
    """Mnemonics of the vector instructions in an aarch64 shared library (``aarch64-linux-gnu-objdump -d``)."""
    if shutil.which(objdump) is None:
        raise DeployError(f"{objdump} is not installed", hint="apt-get install binutils-aarch64-linux-gnu")
    proc = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise DeployError(f"{objdump} could not read {library}: {proc.stderr.strip()[:200]}")
    return Counter(m.group(1) for m in _VECTOR_INSTRUCTION.finditer(proc.stdout))


def integer_instruction_summary(counts: Counter[str]) -> dict[str, int]:
    """Dot products, matrix multiplies and NEON integer multiplies from ``count_instructions``."""
    return {"dot_product": sum(counts[m] for m in DOT_PRODUCT),
            "matrix_multiply": sum(counts[m] for m in MATRIX_MULTIPLY),
            "neon_integer_multiply": sum(counts[m] for m in NEON_INT_MULTIPLY),
            **{m: counts[m] for m in DOT_PRODUCT if counts[m]}}
