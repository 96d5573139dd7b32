"""``mvd tune``: model → the same ONNX ``mvd compile`` builds from → MetaSchedule records for a TVM target.

The ONNX goes through the same export and graph passes as a compile, because records match kernels by their
structure: any difference in the graph (input size above all) and a later compile finds nothing to apply.
Weights do not matter (they are arguments of the kernels), so the records survive a retrained checkpoint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from mobilevit_deploy.compile import _check_request
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.export import export_onnx, onnx_export
from mobilevit_deploy.models import create_model, model_info
from mobilevit_deploy.targets.cpu_profiles import get_profile
from mobilevit_deploy.targets.tvm_records import records_root
from mobilevit_deploy.targets.tvm_rpc import RpcTracker
from mobilevit_deploy.targets.tvm_tuning import TuneResult, check_request, tune

Log = Callable[[str], None]


def default_run_name(model_name: str, input_size: int) -> str:
    """The records folder of one model and size under the target's root: rerunning continues it."""
    return f"{model_name}-{input_size}"


def tune_model(model_name: str, target: str, arch: str, cpu: str | None = None, trials: int = 1000,
               db: str | Path | None = None, input_size: int | None = None, rpc: RpcTracker | None = None,
               checkpoint: str | Path | None = None, strict: bool = True, log: Log | None = None, *,
               strategy: str = "evolutionary", cost_model: str = "xgb", num_cores: int | None = None
               ) -> TuneResult:
    """Export ``model_name`` as ``mvd compile`` does and tune its kernels; see ``targets.tvm_tuning.tune``.

    Every check (target, arch, profile, cross compiler, RPC tracker, input size) runs before the export.
    """
    log = log or (lambda _msg: None)
    if target != "tvm":
        raise DeployError(f"only TVM kernels are tuned, not '{target}'",
                          hint="use --target tvm (ExecuTorch's XNNPACK and ONNX Runtime ship hand-tuned kernels)")
    profile = get_profile(_check_request(target, arch, cpu))
    check_request(profile, trials, rpc, strategy, cost_model)
    info = model_info(model_name)
    size = input_size or info.default_input_size
    info.check_input_size(size)
    model = create_model(model_name, checkpoint=checkpoint, strict=strict)
    run_name = default_run_name(model_name, size)
    with tempfile.TemporaryDirectory(prefix="mvd-tune-") as work:
        onnx_path = Path(work) / "exported.onnx"
        log(f"exporting {model_name} at {size}x{size} (as mvd compile does)")
        export_onnx(model, onnx_path, size, verify_each=False, exported=onnx_export.torch_to_onnx(model, size))
        return tune(onnx_path, profile.name, trials, db if db is not None else records_root(profile) / run_name,
                    rpc=rpc, progress=log, name=run_name, strategy=strategy, cost_model=cost_model,
                    num_cores=num_cores)
