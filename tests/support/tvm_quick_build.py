"""TVM libraries of an ONNX file built at LLVM opt-level 0, for tests of large integer graphs only.

Why: the integer-only I-Segmenter has ~5700 small integer ops (~600 distinct TIR functions at 64×64), and LLVM's
default optimisation makes its build 3-4x slower than opt-level 0 (measured back to back on this shared machine:
host 110 s vs 27 s, aarch64 61 s at opt-level 1 vs 43 s at 0; 22-36 s at the default level when the machine is
quiet). Integer results do not depend on the optimisation level as long as the code has no undefined
behaviour, and the integer-only graph has none by construction (no signed overflow, every ``Gather`` index
clipped into its table); ``tools/bench/bench_isegmenter.py`` builds with ``build_tvm`` at the default level and
checks the same bit-exactness there. Builds go through ``artifact_cache`` keyed by the ONNX bytes and the profile.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx

from mobilevit_deploy.artifact_cache import cached_build
from mobilevit_deploy.targets.cpu_profiles import get_profile
from mobilevit_deploy.targets.tvm_target import CROSS_CXX

OPT_LEVEL = 0


def build_tvm_quick(onnx_path: Path, out_path: Path, profile: str = "host") -> Path:
    """``out_path``: the library of ``onnx_path`` for ``profile`` at LLVM opt-level 0 (from the cache if built)."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    prof = get_profile(profile)
    target_dict = {**prof.target_dict(), "opt-level": OPT_LEVEL}

    def build(dest: Path) -> dict:
        import tvm
        from tvm.relax.frontend.onnx import from_onnx
        from tvm.support import cc

        target = tvm.target.Target(target_dict)
        mod = from_onnx(onnx.load(str(onnx_path)), keep_params_in_input=False)
        executable = tvm.compile(mod, target=target, relax_pipeline="default")
        if prof.is_host:
            executable.export_library(str(dest))
        else:
            executable.export_library(str(dest), fcompile=cc.cross_compiler(CROSS_CXX))
        return {"profile": profile, "target": target_dict}

    cached_build("tvm-quick-test", {"onnx": digest, "target": target_dict}, out_path, build)
    return out_path
