"""The latency harness end to end: `mvd profile` over the real adb against the emulated phone, and its faults.

The TopFormer-T bundle (64 px, ExecuTorch, aarch64) is compiled once per module (~20 s when the lowering is
cached, ~60 s the first time). Runs are short: --runs 3 --warmup 1 --threads 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mobilevit_deploy.bundle.reader import load_bundle
from mobilevit_deploy.cli.main import main
from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.devices import AdbDevice, DeviceGoneError, LocalDevice
from mobilevit_deploy.targets.devices.emulator.testing import adb_session, processes_mentioning
from mobilevit_deploy.targets.harness import profile, summarize

pytestmark = pytest.mark.slow
SHORT = ["--runs", "3", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "topformer_t_et"
    mvd = Path(sys.executable).with_name("mvd")
    subprocess.run([str(mvd), "compile", "topformer_tiny", "--target", "executorch", "--arch", "aarch64",
                    "--input-size", "64", "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with adb_session(tmp_path / "root", tmp_path / "home") as session:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(session.server_port))
        monkeypatch.setenv("HOME", session.env["HOME"])
        yield session
    for _ in range(100):  # a runner orphaned by a killed daemon finishes within seconds
        if not processes_mentioning(str(session.root)):
            break
        threading.Event().wait(0.1)
    assert processes_mentioning(str(session.root)) == []


def test_stats_are_well_formed() -> None:
    s = summarize([10.0, 12.0, 11.0, 30.0])
    assert s.min == 10.0 and s.median == 11.5 and s.mean == 15.75 and s.n == 4
    assert s.min <= s.median <= s.p90 <= s.p99 <= 30.0 and s.cv == pytest.approx(s.std / s.mean)
    assert summarize([5.0]).std == 0.0


def test_mvd_profile_over_adb(bundle: Path, phone, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main(["profile", str(bundle), "--device", phone.serial, *SHORT, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "executorch" in table and "mvd_emulated_phone" in table
    report = json.loads(out.read_text())
    assert report["device"]["abi"] == "arm64-v8a" and report["device"]["max_freq_khz"]
    assert report["temps_before_c"] and report["temps_after_c"]
    (result,) = report["results"]
    assert result["rel_max_diff"] <= 1e-4 and result["threads"] == 1 and len(result["iter_us"]) == 3
    s = result["stats_us"]
    assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p99"] and s["n"] == 3 and s["cv"] >= 0
    # The output was pulled from the device and matches the reference; a second run pushes nothing.
    logs: list[str] = []
    again = profile([bundle], AdbDevice(phone.serial), warmup=0, runs=1, threads=[1], pin="big", log=logs.append)
    assert any("pushed 0 file(s)" in m for m in logs)
    assert again.results[0].pin == "7"


def test_crashing_runner_reports_its_stderr(bundle: Path, phone, tmp_path: Path) -> None:
    broken = tmp_path / "broken_bundle"
    shutil.copytree(bundle, broken)
    (broken / "model.pte").write_bytes(b"not a program" * 100)
    with pytest.raises(DeployError, match=r"runner crashed .*exit code [1-9]") as info:
        profile([load_bundle(broken, check_files=False)], AdbDevice(phone.serial), warmup=0, runs=1, threads=[1])
    assert "stderr" in info.value.message and len(info.value.message.splitlines()) > 1


def _kill_when(monkeypatch: pytest.MonkeyPatch, phone, method: str, delay: float, cond=lambda args: True) -> None:
    real = getattr(AdbDevice, method)

    def wrapped(self, *args, **kw):
        if cond(args):
            threading.Timer(delay, phone.emulator.kill).start()
        return real(self, *args, **kw)

    monkeypatch.setattr(AdbDevice, method, wrapped)


def test_daemon_killed_mid_push(bundle: Path, phone, tmp_path: Path, monkeypatch, capsys) -> None:
    _kill_when(monkeypatch, phone, "push", 0.005, lambda a: Path(a[0]).stat().st_size > 4_000_000)
    out = tmp_path / "report.json"
    assert main(["profile", str(bundle), "--device", phone.serial, *SHORT, "--json", str(out)]) == 2
    assert "disappeared" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".report.json*"))


def test_daemon_killed_mid_run(bundle: Path, phone, tmp_path: Path, monkeypatch, capsys) -> None:
    _kill_when(monkeypatch, phone, "shell", 0.4, lambda a: "--iters" in str(a[0]))
    out = tmp_path / "report.json"
    assert main(["profile", str(bundle), "--device", phone.serial, *SHORT, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "disappeared" in err and "--retries" in err
    assert not out.exists()


def test_retries_recover_from_a_transient_loss(bundle: Path, tmp_path: Path) -> None:
    class Flaky(LocalDevice):
        failures = 1

        def push(self, local, remote):
            if self.failures:
                self.failures -= 1
                raise DeviceGoneError("simulated unplug")
            super().push(local, remote)

    with pytest.raises(DeviceGoneError):
        profile([bundle], Flaky(tmp_path / "a"), warmup=0, runs=1, threads=[1])
    report = profile([bundle], Flaky(tmp_path / "b"), warmup=0, runs=1, threads=[1], retries=1)
    assert report.results[0].rel_max_diff <= 1e-4
