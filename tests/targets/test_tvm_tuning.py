"""MetaSchedule tuning with real TVM: tune a one-conv model, build with the records, reuse them; RPC on loopback.

Kept small on purpose: one conv kernel (16x16, 8 channels), 8 trials, random search (``replay-trace``) and the
``random`` cost model, so a tuning run costs seconds of CPU, not the minutes of the default evolutionary search
with xgboost (that path is the CLI's default and was run by hand). TopFormer is never tuned here (~17 min).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.targets.cpu_profiles import get_profile
from mobilevit_deploy.targets.tvm_records import (
    MANIFEST,
    UntunedWarning,
    database_folders,
    records_fingerprint,
    records_root,
)
from mobilevit_deploy.targets.tvm_rpc import RpcTracker, free_port, loopback_rpc
from mobilevit_deploy.targets.tvm_target import build_tvm, run_tvm_host
from mobilevit_deploy.targets.tvm_tuning import TaskProgress, TuneProgress, tune

pytestmark = pytest.mark.slow
SIZE = 16
TRIALS = 8
FAST = {"strategy": "replay-trace", "cost_model": "random"}  # the search is not under test, the plumbing is


def _conv_model(size: int = SIZE, seed: int = 0) -> onnx.ModelProto:
    """Conv 3→8 (3x3, pad 1) + ReLU: one fused kernel, so one tuning task."""
    rng = np.random.default_rng(seed)
    weight = (0.3 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32)
    bias = (0.1 * rng.standard_normal(8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "one_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, size, size])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty ``$MVD_CACHE`` for the module: the default records store must start empty."""
    root = tmp_path_factory.mktemp("mvd-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MVD_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "one_conv.onnx"
    onnx.save(_conv_model(), path)
    return path


@pytest.fixture(scope="module")
def untuned(cache: Path, conv_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A build before any tuning: it must warn and say so in its report."""
    out = tmp_path_factory.mktemp("untuned") / "model.so"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        artifact = build_tvm(conv_onnx, out, "host")
    return {"artifact": artifact, "warnings": [w for w in caught if issubclass(w.category, UntunedWarning)]}


@pytest.fixture(scope="module")
def tuned_db(cache: Path, conv_onnx: Path, untuned: dict) -> dict:
    """Tune into the default records store (``untuned`` first: it must see an empty store)."""
    lines: list[str] = []
    result = tune(conv_onnx, "host", TRIALS, name="one_conv-16", progress=lines.append, **FAST)
    return {"result": result, "lines": lines}


def test_untuned_build_warns_and_reports(untuned: dict) -> None:
    report = untuned["artifact"].report
    assert report["tuning"]["tuned"] is False
    assert report["tuning"]["databases"] == []
    assert len(untuned["warnings"]) == 1
    message = str(untuned["warnings"][0].message)
    assert "untuned" in message and "mvd tune MODEL --target tvm --arch host --cpu host --input-size 16" in message


def test_tune_writes_records_to_the_default_store(tuned_db: dict, cache: Path) -> None:
    result = tuned_db["result"]
    folder = Path(result.db_dir)
    assert folder == records_root(get_profile("host")) / "one_conv-16"
    assert folder.is_relative_to(cache / "tvm-tuning")
    assert (result.tasks, result.tasks_tuned, result.trials) == (1, 1, TRIALS)
    assert result.build_errors == 0 and result.run_errors == 0
    assert result.estimated_ms is not None and 0 < result.estimated_ms < 5  # a 16x16 conv: microseconds
    records = (folder / "database_tuning_record.json").read_text().splitlines()
    assert len(records) == TRIALS
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["target"] == get_profile("host").target_dict() and len(manifest["runs"]) == 1
    progress = [line for line in tuned_db["lines"] if line.startswith("task 1/1 fused_conv2d_add_relu")]
    assert progress[0].endswith("searching and measuring")
    assert "best" in progress[-1] and "model estimate" in progress[-1]


def test_tuned_build_applies_records_and_matches_untuned(tuned_db: dict, untuned: dict, conv_onnx: Path,
                                                         tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntunedWarning)  # a tuned build must not warn
        artifact = build_tvm(conv_onnx, tmp_path / "tuned.so", "host")
    tuning = artifact.report["tuning"]
    assert tuning["tuned"] is True
    assert (tuning["tasks"], tuning["tasks_with_records"], tuning["untuned_tasks"]) == (1, 1, [])
    assert tuning["databases"] == [tuned_db["result"].db_dir]
    x = np.random.default_rng(3).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    out_tuned = run_tvm_host(artifact.path, x)
    out_untuned = run_tvm_host(untuned["artifact"].path, x)
    assert out_tuned.shape == (1, 8, SIZE, SIZE)
    np.testing.assert_allclose(out_tuned, out_untuned, rtol=0, atol=1e-5)


def test_records_of_another_size_do_not_match(tuned_db: dict, tmp_path: Path) -> None:
    """Shapes are part of every workload: a 24x24 build finds the store but no record, and warns."""
    onnx_path = tmp_path / "conv24.onnx"
    onnx.save(_conv_model(size=24), onnx_path)
    with pytest.warns(UntunedWarning, match="no tuning records match this model"):
        artifact = build_tvm(onnx_path, tmp_path / "m.so", "host")
    tuning = artifact.report["tuning"]
    assert tuning["tuned"] is False and tuning["tasks"] == 1 and tuning["tasks_with_records"] == 0
    assert tuning["databases"] == [tuned_db["result"].db_dir]


def test_empty_explicit_db_and_foreign_target_are_refused(tuned_db: dict, conv_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="holds no MetaSchedule database"):
        build_tvm(conv_onnx, tmp_path / "m.so", "host", tuning_db=tmp_path)
    # MetaSchedule matches records whatever target they were tuned for: the manifest check must refuse them
    with pytest.raises(DeployError, match=r"were tuned for .*not for profile 'cortex-a76'"):
        database_folders(get_profile("cortex-a76"), db=tuned_db["result"].db_dir)


def test_fingerprint_changes_when_records_grow(tuned_db: dict) -> None:
    profile = get_profile("host")
    before = records_fingerprint(profile)
    assert before is not None and records_fingerprint(get_profile("cortex-a55")) is None
    record_file = Path(tuned_db["result"].db_dir) / "database_tuning_record.json"
    text = record_file.read_text()
    record_file.write_text(text + text.splitlines()[-1] + "\n")  # one more (duplicate) record
    try:
        assert records_fingerprint(profile) != before
    finally:
        record_file.write_text(text)


def test_bad_requests_fail_before_any_work(conv_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="needs a TVM RPC server there"):
        tune(conv_onnx, "cortex-a76", TRIALS, tmp_path)
    with pytest.raises(DeployError, match="--trials must be at least 1"):
        tune(conv_onnx, "host", 0, tmp_path)
    with pytest.raises(DeployError, match="unknown CPU profile 'pentium'"):
        tune(conv_onnx, "pentium", TRIALS, tmp_path)
    unreachable = RpcTracker("127.0.0.1", free_port(), "phone")
    with pytest.raises(DeployError, match=r"cannot reach the RPC tracker at 127\.0\.0\.1"):
        tune(conv_onnx, "host", TRIALS, tmp_path, rpc=unreachable)
    with pytest.raises(DeployError, match="bad RPC tracker address"):
        RpcTracker.parse("127.0.0.1:notaport", "phone")
    assert not any(tmp_path.iterdir())  # nothing written


def test_progress_estimate_weights_kernels() -> None:
    lines: list[str] = []
    state = TuneProgress([TaskProgress("conv", 2.0), TaskProgress("add", 1.0)], lines.append)
    state.record(0, [0.5, None, 0.25], ["LocalBuilder: Timeout"])
    assert state.estimated_ms == pytest.approx(0.5) and state.build_errors == 0  # counters belong to the callback
    state.record(1, [0.1], [])
    assert state.estimated_ms == pytest.approx(0.6) and state.trials == 4
    assert lines[0] == ("task 1/2 conv: 3 trials, 1 failed (task 3, all 3), best 250.0 us; model estimate "
                        "0.500 ms over 1/2 kernels")
    assert state.first_error == "LocalBuilder: Timeout"


def test_cli_rejects_bad_input_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from mobilevit_deploy.cli import tune_cmd

    parser = argparse.ArgumentParser()
    tune_cmd.add_parser(parser.add_subparsers())
    cases = {
        ("no_such_model",): "unknown model",
        ("topformer_tiny", "--arch", "aarch64"): "needs a TVM RPC server there",
        ("topformer_tiny", "--target", "executorch"): "only TVM kernels are tuned",
        ("topformer_tiny", "--rpc-key", "phone"): "--rpc-key needs --rpc-tracker",
        ("topformer_tiny", "--rpc-tracker", f"127.0.0.1:{free_port()}", "--rpc-key", "p"): "cannot reach the RPC",
    }
    for argv, expected in cases.items():
        args = parser.parse_args(["tune", *argv])
        with pytest.raises(DeployError, match=expected) as err:
            args.run(args)
        assert "\n" not in err.value.message
    assert "Traceback" not in capsys.readouterr().err


def test_tuning_through_rpc_on_loopback(conv_onnx: Path, tmp_path: Path, cache: Path) -> None:
    """The device path, with the device played by a Python RPC server on 127.0.0.1 behind a tracker."""
    with loopback_rpc(key="loopback") as tracker:
        with pytest.raises(DeployError, match=r"no RPC server with key .phone.*keys there: loopback"):
            RpcTracker(tracker.host, tracker.port, "phone").check()
        result = tune(conv_onnx, "host", TRIALS, tmp_path / "rpc-db", rpc=tracker, **FAST)
    assert result.measured_on == str(tracker)
    assert (result.tasks_tuned, result.trials, result.run_errors, result.build_errors) == (1, TRIALS, 0, 0)
    artifact = build_tvm(conv_onnx, tmp_path / "m.so", "host", tuning_db=tmp_path / "rpc-db")
    assert artifact.report["tuning"]["tuned"] is True
