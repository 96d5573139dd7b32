"""MetaSchedule tuning of a model's kernels for a CPU profile, measured here or on a device through RPC.

``tune`` prepares the Relax module exactly as a build does (``tvm_records.prepare_module``), tunes every kernel
with ``tune_relax`` and leaves the records in a JSON database folder of the records store, where ``build_tvm``
finds them. What makes it work on this stack (``shared/reference/tvm_tuning.md``):

* Candidates are built by ``fast_build``: MetaSchedule's default build function imports
  ``tvm.s_tir.tensor_intrin`` in every fresh worker, which parses ~250 TVMScript functions (25-64 s of CPU)
  and overruns the build timeout, so every build "fails". fp32 kernels need none of those intrinsics.
* The tuning process itself must import the intrinsics (``TuneContext`` does), but only the CPU ones are ever
  used here: :func:`import_cpu_tensor_intrinsics` registers x86 and arm_cpu and skips CUDA/ROCm/Hexagon,
  which are ~85 % of that import (137 of ~200 s on a loaded machine).
* Few trials per iteration (8): with MetaSchedule's default of 64, a budget of a few hundred trials reaches
  only a few kernels and the rest stay naive.
* Candidates are exported as ``.so`` files (linked here, with the cross compiler for aarch64), so a device's
  RPC server needs no compiler.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from mobilevit_deploy.errors import DeployError

from .cpu_profiles import CpuProfile, get_profile
from .tvm_records import MODULE_EQUALITY, prepare_module, records_root, write_manifest
from .tvm_rpc import RpcTracker

TRIALS_PER_ITER = 8
BUILD_TIMEOUT_SEC = 60.0
DEFAULT_AARCH64_CORES = 4  # phones run 4 big or 4 little cores per cluster
STRATEGIES = ("evolutionary", "replay-trace")
COST_MODELS = ("xgb", "mlp", "random")

Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------- worker-side functions
# Module-level so the build workers (fresh processes) import them by name, without TVM's tensor intrinsics.


def fast_build(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default build minus its ``tvm.s_tir.tensor_intrin`` import (see the module docstring)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _export_so(mod: Any, fcompile: Any = None) -> str:
    path = str(Path(tempfile.mkdtemp(prefix="mvd-candidate-")) / "candidate.so")
    if fcompile is None:
        mod.export_library(path)
    else:
        mod.export_library(path, fcompile=fcompile)
    return path


def export_host_so(mod: Any) -> str:
    """A candidate as a host ``.so`` (linked by the host compiler)."""
    return _export_so(mod)


def export_aarch64_so(mod: Any) -> str:
    """A candidate as an aarch64 ``.so`` (linked by ``aarch64-linux-gnu-g++``): the device needs no compiler."""
    from tvm.support import cc

    from .tvm_target import CROSS_CXX

    return _export_so(mod, cc.cross_compiler(CROSS_CXX))


def alloc_args_from_host(session: Any, device: Any, args_info: Any, alloc_repeat: int) -> list[Any]:
    """RPCRunner's argument allocation, with the random data made here and copied to the device.

    MetaSchedule's default calls ``tvm.contrib.random.random_fill_for_measure`` on the device, which runtimes built
    without ``USE_RANDOM`` lack, the aarch64 wheel's ``libtvm_runtime`` among them: every run then fails.
    """
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    rng = np.random.default_rng(0)

    def fill(arg: Any) -> None:
        shape, dtype = tuple(int(d) for d in arg.shape), str(arg.dtype)
        data = rng.uniform(-1.0, 1.0, shape) if "float" in dtype else rng.integers(0, 8, shape)
        arg.copyfrom(data.astype(dtype))

    return alloc_argument_common(fill, device, args_info, alloc_repeat)


# ------------------------------------------------------------------------------------------------ helpers


def import_cpu_tensor_intrinsics() -> None:
    """Register TVM's CPU tensor intrinsics (x86, arm_cpu) without its GPU/DSP ones.

    ``TuneContext`` imports the whole ``tvm.s_tir.tensor_intrin`` package; its ``__init__`` imports CUDA, ROCm
    and Hexagon intrinsics too. Registering the package without running that ``__init__`` makes the later
    import a no-op. Any other submodule can still be imported by name.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import tvm.s_tir

    spec = importlib.util.find_spec(name)
    if spec is None:  # a TVM without it: TuneContext's own import will report the problem
        return
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    tvm.s_tir.tensor_intrin = package
    for sub in ("x86", "arm_cpu"):
        importlib.import_module(f"{name}.{sub}")


def load_relax(model: str | Path | onnx.ModelProto | Any) -> Any:
    """A Relax module from an ONNX path, an ONNX model or a Relax module, imported as ``build_tvm`` does."""
    import tvm

    if isinstance(model, tvm.ir.IRModule):
        return model
    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise DeployError(f"ONNX file {model} not found", hint="export it first with `mvd export`")
        model = onnx.load(str(model))
    if not isinstance(model, onnx.ModelProto):
        raise DeployError(f"cannot tune a {type(model).__name__}", hint="pass an ONNX file/model or a Relax module")
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(model, keep_params_in_input=False)  # the same import as build_tvm: same workloads


@contextlib.contextmanager
def _exclusive(db_dir: Path) -> Iterator[None]:
    """One tuner per database folder: MetaSchedule's JSON files index workloads by line number, so two writers
    appending at once would corrupt them."""
    db_dir.mkdir(parents=True, exist_ok=True)
    with open(db_dir / ".mvd-tune.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another `mvd tune` is writing to {db_dir}",
                              hint="wait for it, or pass a different --db") from None
        yield


@contextlib.contextmanager
def _quiet_metaschedule() -> Iterator[None]:
    """MetaSchedule logs every task table to stdout; keep that in its log files and print our progress instead.

    Each tuning run configures MetaSchedule's handlers anew through ``logging.config``, which fails on a handler
    without a name already on its logger (TVM 0.27; pytest's capture handlers are such). So the logger's own
    handlers are set aside during the run, the run's handlers closed afterwards, and the originals put back.
    """
    name = "tvm.s_tir.meta_schedule"
    logger = logging.getLogger(name)
    old_level, old_handlers = logger.level, list(logger.handlers)
    for handler in old_handlers:
        logger.removeHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        for each in [logger, *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                               if n.startswith(name + "."))]:
            for handler in list(each.handlers):
                each.removeHandler(handler)
                handler.close()
        for handler in old_handlers:
            logger.addHandler(handler)


# ----------------------------------------------------------------------------------------------- progress


@dataclass
class TaskProgress:
    name: str
    weight: float  # how often the kernel runs in one forward pass
    trials: int = 0
    best_ms: float | None = None


@dataclass
class TuneProgress:
    """Per-kernel bests as measurements arrive; prints one line per measured batch."""

    tasks: list[TaskProgress]
    log: Progress
    build_errors: int = 0
    run_errors: int = 0
    first_error: str | None = None

    @property
    def trials(self) -> int:
        return sum(t.trials for t in self.tasks)

    @property
    def estimated_ms(self) -> float | None:
        """Sum of weight x best latency over the kernels measured so far (MetaSchedule's own estimate)."""
        known = [t.weight * t.best_ms for t in self.tasks if t.best_ms is not None]
        return sum(known) if known else None

    def record(self, task_id: int, latencies_ms: list[float | None], errors: list[str]) -> None:
        task = self.tasks[task_id]
        task.trials += len(latencies_ms)
        valid = [lat for lat in latencies_ms if lat is not None]
        if valid:
            task.best_ms = min(valid + ([task.best_ms] if task.best_ms is not None else []))
        if errors and self.first_error is None:
            self.first_error = errors[0].strip().splitlines()[-1][:300]
        tuned = sum(t.best_ms is not None for t in self.tasks)
        best = f"{task.best_ms * 1e3:.1f} us" if task.best_ms is not None else "none valid"
        failed = f", {len(errors)} failed" if errors else ""
        total = self.estimated_ms
        estimate = f"{total:.3f} ms over {tuned}/{len(self.tasks)} kernels" if total is not None else "n/a"
        self.log(f"task {task_id + 1}/{len(self.tasks)} {task.name}: {len(latencies_ms)} trials{failed} "
                 f"(task {task.trials}, all {self.trials}), best {best}; model estimate {estimate}")


class _PickedTaskLog(logging.Handler):
    """Forwards MetaSchedule's "TaskScheduler picks Task #i" log line as a progress line.

    Measurements reach the measure callback only when the scheduler joins them, and its first round sends every
    kernel before joining any: without this, a large model shows no progress for its whole first round.
    """

    PICKS = re.compile(r"TaskScheduler picks Task #(\d+)")

    def __init__(self, progress: TuneProgress) -> None:
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PICKS.search(record.getMessage())
        if found:
            task_id = int(found.group(1))
            tasks = self.progress.tasks
            self.progress.log(f"task {task_id + 1}/{len(tasks)} {tasks[task_id].name}: searching and measuring")


def _measure_callback(progress: TuneProgress) -> Any:
    """A MetaSchedule measure callback feeding :class:`TuneProgress` (defined lazily: it needs TVM)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class _Callback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler: Any, task_id: int, candidates: Any, builder_results: Any,
                  runner_results: Any) -> None:
            latencies: list[float | None] = []
            errors: list[str] = []
            for built, ran in zip(builder_results, runner_results, strict=False):
                if built.error_msg:
                    progress.build_errors += 1
                    errors.append(str(built.error_msg))
                    latencies.append(None)
                elif ran.error_msg or not ran.run_secs:
                    progress.run_errors += 1
                    errors.append(str(ran.error_msg or "no timing"))
                    latencies.append(None)
                else:
                    secs = [float(s) for s in ran.run_secs]
                    latencies.append(1e3 * sum(secs) / len(secs))
            progress.record(task_id, latencies, errors)

    return _Callback()


# ------------------------------------------------------------------------------------------------- tune


@dataclass
class TuneResult:
    """What one tuning run did; ``to_dict`` is what the records manifest keeps."""

    db_dir: str
    profile: str
    target: str
    tasks: int
    tasks_tuned: int
    trials: int
    wall_seconds: float
    estimated_ms: float | None
    build_errors: int
    run_errors: int
    measured_on: str
    name: str | None = None
    per_task: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_request(prof: CpuProfile, trials: int, rpc: RpcTracker | None, strategy: str = "evolutionary",
                  cost_model: str = "xgb") -> None:
    """Everything that can be wrong before TVM is loaded, each as one clear error (the tracker is checked too)."""
    if trials < 1:
        raise DeployError(f"--trials must be at least 1, not {trials}")
    if strategy not in STRATEGIES:
        raise DeployError(f"unknown search strategy '{strategy}'", hint=f"one of: {', '.join(STRATEGIES)}")
    if cost_model not in COST_MODELS:
        raise DeployError(f"unknown cost model '{cost_model}'", hint=f"one of: {', '.join(COST_MODELS)}")
    if not prof.is_host and rpc is None:
        raise DeployError(f"tuning for {prof.name} measures every candidate on the device itself, which needs a "
                          "TVM RPC server there, reached through a tracker",
                          hint="start one (see targets/tvm_rpc.py) and pass --rpc-tracker HOST:PORT --rpc-key KEY")
    from .tvm_target import _check_toolchain

    _check_toolchain(prof, ndk=False)  # the linker that exports candidates: host g++ or the cross compiler
    if cost_model == "xgb" and importlib.util.find_spec("xgboost") is None:
        raise DeployError("the xgb cost model needs the xgboost package",
                          hint="pip install xgboost-cpu (not plain xgboost: it pulls CUDA), or --cost-model random")
    if rpc is not None:
        rpc.check()


def _builder_runner(prof: CpuProfile, rpc: RpcTracker | None, workers: int) -> tuple[Any, Any]:
    from tvm.s_tir import meta_schedule as ms

    export = export_host_so if prof.is_host else export_aarch64_so
    builder = ms.builder.LocalBuilder(max_workers=workers, timeout_sec=BUILD_TIMEOUT_SEC, f_build=fast_build,
                                      f_export=export)
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50, enable_cpu_cache_flush=False)
    if rpc is None:
        return builder, ms.runner.LocalRunner(evaluator_config=evaluator)
    return builder, ms.runner.RPCRunner(rpc_config=rpc.rpc_config(), evaluator_config=evaluator, max_workers=1,
                                        f_alloc_argument=alloc_args_from_host)


def tune(model: str | Path | onnx.ModelProto | Any, profile: str, trials: int, db_dir: str | Path | None = None, *,
         rpc: RpcTracker | None = None, progress: Progress | None = None, name: str | None = None,
         trials_per_task: int | None = None, num_cores: int | None = None, strategy: str = "evolutionary",
         cost_model: str = "xgb", seed: int = 0) -> TuneResult:
    """Tune every kernel of ``model`` for ``profile`` with about ``trials`` measurements; records go to ``db_dir``.

    ``db_dir`` defaults to ``records_root(profile)/<name>`` (``name``: the run's label, default ``model``), where
    ``build_tvm`` looks by default. Running again into the same folder continues from its records. Host
    profiles measure on this machine; aarch64 profiles need ``rpc`` (a tracker with the device's server).
    ``num_cores`` is the thread count candidates are tuned for (host: this machine's cores; aarch64: 4).
    """
    log = progress or (lambda _msg: None)
    prof = get_profile(profile)
    check_request(prof, trials, rpc, strategy, cost_model)
    db_dir = Path(db_dir) if db_dir is not None else records_root(prof) / (name or "model")

    from tvm.s_tir import meta_schedule as ms

    cores = num_cores or ((os.cpu_count() or 1) if prof.is_host else DEFAULT_AARCH64_CORES)
    target = prof.tvm_target(num_cores=cores)
    start = time.perf_counter()
    log(f"preparing the module for {prof.name} ({target})")
    prepared = prepare_module(load_relax(model), target)
    tasks = ms.relax_integration.extract_tasks(prepared, target, module_equality=MODULE_EQUALITY)
    if not tasks:
        raise DeployError("the model has no kernels to tune")
    per_task = trials_per_task or max(TRIALS_PER_ITER, math.ceil(trials / len(tasks)))
    log(f"{len(tasks)} kernels, up to {trials} trials ({per_task} per kernel), measured "
        f"{'on ' + str(rpc) if rpc else 'on this machine'}; records in {db_dir}")
    state = TuneProgress([TaskProgress(t.task_name, float(t.weight)) for t in tasks], log)
    import_cpu_tensor_intrinsics()
    builder, runner = _builder_runner(prof, rpc, workers=min(cores, os.cpu_count() or 1))
    with _exclusive(db_dir), _quiet_metaschedule():
        database = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality=MODULE_EQUALITY)
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            tasks, str(db_dir), strategy=strategy, seed=seed)
        callbacks = [*ms.measure_callback.MeasureCallback.create("default"), _measure_callback(state)]
        logging.getLogger("tvm.s_tir.meta_schedule").addHandler(_PickedTaskLog(state))  # removed on exit
        ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(db_dir), max_trials_global=trials,
                      max_trials_per_task=per_task, num_trials_per_iter=min(TRIALS_PER_ITER, per_task),
                      builder=builder, runner=runner, database=database, cost_model=cost_model,
                      measure_callbacks=callbacks, module_equality=MODULE_EQUALITY)
        result = TuneResult(db_dir=str(db_dir), profile=prof.name, target=str(target), tasks=len(tasks),
                            tasks_tuned=sum(t.best_ms is not None for t in state.tasks), trials=state.trials,
                            wall_seconds=round(time.perf_counter() - start, 1), estimated_ms=state.estimated_ms,
                            build_errors=state.build_errors, run_errors=state.run_errors,
                            measured_on=str(rpc) if rpc else "local", name=name,
                            per_task=[asdict(t) for t in state.tasks])
        if result.tasks_tuned == 0:
            raise DeployError(f"all {state.trials} candidates failed ({state.build_errors} builds, "
                              f"{state.run_errors} runs): {state.first_error}",
                              hint=f"see the logs in {db_dir / 'logs'}")
        write_manifest(db_dir, prof, False, {**result.to_dict(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return result
