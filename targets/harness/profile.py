"""``profile``: deploy bundles to a device, run their runners per thread count, check outputs, summarize.

Timing comes only from the runner's JSON (``iter_us``, measured on the device); adb round trips never enter
it. Every fault ends in a DeployError naming it (device gone, runner crash with its stderr, hang, full disk).
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from mobilevit_deploy.bundle.reader import Bundle, load_bundle
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.export.verify import compare_outputs
from mobilevit_deploy.targets.devices.base import Device, DeviceGoneError
from mobilevit_deploy.targets.runner_build import parse_runner_json

from . import device_info
from .deploy import INPUT_NAME, OUTPUT_NAME, Deployed, deploy
from .report import ConfigResult, ProfileReport
from .stats import HIGH_CV, summarize

REL_TOLERANCE = 1e-4
TEMP_RISE_WARN_C = 5.0
T = TypeVar("T")


def _retrying(device: Device, retries: int, what: str, fn: Callable[[], T],
              log: Callable[[str], None]) -> T:
    """Run ``fn``; on a transient device loss reconnect and try again, up to ``retries`` more times."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except DeviceGoneError as err:
            if attempt == retries:
                raise
            log(f"{what}: {err.message}; reconnecting (retry {attempt + 1} of {retries})")
            device.reconnect()
    raise AssertionError("unreachable")


def _runner_command(dep: Deployed, warmup: int, runs: int, threads: int, cpus: str | None) -> str:
    q = shlex.quote
    pin = f"taskset -c {q(cpus)} " if cpus else ""
    return (f"cd {q(dep.folder)} && rm -f {OUTPUT_NAME} && {pin}./{q(dep.runner)} --model {q(dep.artifact)} "
            f"--input {INPUT_NAME} --output {OUTPUT_NAME} --warmup {int(warmup)} --iters {int(runs)} "
            f"--threads {int(threads)}")


def _run_config(device: Device, bundle: Bundle, dep: Deployed, reference: np.ndarray, *, warmup: int, runs: int,
                threads: int, cpus: str | None, timeout: float, retries: int, workdir: Path,
                log: Callable[[str], None]) -> ConfigResult:
    cmd = _runner_command(dep, warmup, runs, threads, cpus)
    result = _retrying(device, retries, "run", lambda: device.shell(cmd, timeout=timeout), log)
    if result.exit_code != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-8:]) or "(no stderr)"
        raise DeployError(f"the runner crashed on {device.serial} (exit code {result.exit_code}, "
                          f"{bundle.root.name}, {threads} thread(s)); its stderr:\n{tail}",
                          hint="run `mvd verify` on the bundle, or rebuild it with `mvd compile`")
    lines = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise DeployError(f"the runner printed no JSON line on {device.serial}: {result.stdout.strip()[-300:]!r}")
    parsed = parse_runner_json(lines[-1])
    local_out = workdir / f"{bundle.root.name}-{threads}.npy"
    _retrying(device, retries, "pull", lambda: device.pull(f"{dep.folder}/{OUTPUT_NAME}", local_out), log)
    try:
        out = np.load(local_out)
        agreement = compare_outputs(out, reference)
    except (ValueError, OSError) as err:
        raise DeployError(f"the output pulled from {device.serial} is unusable: {err}") from None
    if agreement.rel_max_diff > REL_TOLERANCE:
        raise DeployError(f"{bundle.root.name} on {device.serial} ({threads} thread(s)) disagrees with the bundle's "
                          f"reference: relative max diff {agreement.rel_max_diff:.2e} > {REL_TOLERANCE:g}",
                          hint="run `mvd verify` on the bundle; the device build may be miscompiled")
    return ConfigResult(bundle=bundle.root.name, runtime=parsed.runtime, threads=threads, pin=cpus,
                        stats=summarize(parsed.iter_us), load_ms=parsed.load_ms, peak_rss_kb=parsed.peak_rss_kb,
                        rel_max_diff=agreement.rel_max_diff, argmax_agreement=agreement.argmax_agreement,
                        iter_us=parsed.iter_us)


def _throttle_warnings(report: ProfileReport, after: device_info.DeviceInfo) -> list[str]:
    warnings = []
    before, temps = report.temps_before, report.temps_after
    rises = {z: temps[z] - before[z] for z in before.keys() & temps.keys()}
    if rises and max(rises.values()) >= TEMP_RISE_WARN_C:
        zone = max(rises, key=rises.__getitem__)
        warnings.append(f"thermal zone {zone} rose {rises[zone]:.1f} °C during the run: later runs may be throttled")
    for cpu, cap in sorted(after.scaling_max_khz.items()):
        top = after.max_freq_khz.get(cpu)
        if top and cap < top:
            warnings.append(f"cpu{cpu} is capped at {cap // 1000} MHz of {top // 1000} MHz (thermal throttling?)")
    return warnings


def profile(bundles: Sequence[str | Path | Bundle], device: Device, warmup: int = 5, runs: int = 50,
            threads: Sequence[int] = (1, 2, 4), pin: str | None = None, retries: int = 0, timeout: float = 600,
            log: Callable[[str], None] = lambda _: None) -> ProfileReport:
    """Profile every bundle at every thread count on ``device``; raises DeployError on any fault."""
    if runs < 1 or warmup < 0 or not threads or any(t < 1 for t in threads):
        raise DeployError("profile needs runs ≥ 1, warmup ≥ 0 and thread counts ≥ 1")
    loaded = [b if isinstance(b, Bundle) else load_bundle(b) for b in bundles]
    info = _retrying(device, retries, "device info", lambda: device_info.collect(device), log)
    cpus = device_info.resolve_pin(pin, info) if pin else None
    if cpus and not info.has_taskset:
        log(f"{device.serial} has no taskset: running unpinned")
        cpus = None
    report = ProfileReport(device=info, warmup=warmup, runs=runs)
    report.temps_before = _retrying(device, retries, "temperatures", lambda: device_info.read_temps(device), log)
    with tempfile.TemporaryDirectory(prefix="mvd-profile-") as tmp:
        workdir = Path(tmp)
        for bundle in loaded:
            x, reference = bundle.reference()
            input_npy = workdir / INPUT_NAME
            np.save(input_npy, x.astype(np.float32))
            dep = _retrying(device, retries, "push", lambda b=bundle, i=input_npy: deploy(device, b, i), log)
            log(f"{bundle.root.name}: pushed {len(dep.pushed)} file(s), {len(dep.skipped)} unchanged, in {dep.folder}")
            for t in threads:
                log(f"{bundle.root.name}: {t} thread(s), {warmup} warmup + {runs} runs ...")
                result = _run_config(device, bundle, dep, reference, warmup=warmup, runs=runs, threads=t, cpus=cpus,
                                     timeout=timeout, retries=retries, workdir=workdir, log=log)
                report.results.append(result)
                if result.stats.cv > HIGH_CV:
                    report.warnings.append(f"{result.bundle} at {t} thread(s): high variance (CV {result.stats.cv:.0%}"
                                           f" > {HIGH_CV:.0%}); close other apps, pin cores, or raise --runs")
    report.temps_after = _retrying(device, retries, "temperatures", lambda: device_info.read_temps(device), log)
    after = _retrying(device, retries, "device info", lambda: device_info.collect(device), log)
    report.warnings[:0] = _throttle_warnings(report, after)
    return report
