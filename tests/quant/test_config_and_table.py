"""Config validation, the handler registry, and the quantization table's JSON round trip and error messages."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from mobilevit_deploy.errors import DeployError
from mobilevit_deploy.quant import (
    AdaLogConfig,
    Log2Config,
    PerChannel,
    PerHead,
    PerTensor,
    QuantConfig,
    QuantConfigError,
    QuantKind,
    QuantPoint,
    QuantTable,
    QuantTableError,
    RangeMethod,
    SULQConfig,
    SULQSteps,
    TensorRole,
    UniformConfig,
    get_quant_handler,
    register_quant_handler,
)
from mobilevit_deploy.quant.primitives import dequantize_uniform, quantize_uniform

CONFIGS = [UniformConfig, Log2Config, AdaLogConfig, SULQConfig]


@pytest.mark.parametrize("cls", CONFIGS)
def test_defaults_validate_and_are_frozen(cls: type[QuantConfig]) -> None:
    cfg = cls()
    assert cfg.weight_bits == cfg.act_bits == cfg.attn_bits == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.weight_bits = 8  # type: ignore[misc]
    assert cls(weight_bits=8, act_bits=6, attn_bits=3).to_dict()["type"] == cls.__name__


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("field", ["weight_bits", "act_bits", "attn_bits"])
@pytest.mark.parametrize("bad", [2, 5, 7, 16, True, 4.0, "4"])
def test_bits_outside_the_set_are_user_errors(cls: type[QuantConfig], field: str, bad: object) -> None:
    with pytest.raises(QuantConfigError, match=field) as info:
        cls(**{field: bad})
    assert isinstance(info.value, DeployError) and "3, 4, 6, 8" in str(info.value)


def test_granularity_and_enum_checks() -> None:
    assert UniformConfig(weight_granularity=PerTensor(), matmul_granularity=PerHead(2, 4))
    with pytest.raises(QuantConfigError, match="weight_granularity cannot be PerHead"):
        UniformConfig(weight_granularity=PerHead(1, 4))
    with pytest.raises(QuantConfigError, match="not a granularity"):
        UniformConfig(act_granularity="per_channel")  # type: ignore[arg-type]
    with pytest.raises(QuantConfigError, match="RangeMethod"):
        UniformConfig(range_method="mse")  # type: ignore[arg-type]
    with pytest.raises(QuantConfigError):
        PerHead(1, 0)
    with pytest.raises(QuantConfigError):
        PerChannel("0")  # type: ignore[arg-type]
    with pytest.raises(QuantConfigError, match="percentile"):
        UniformConfig(range_method=RangeMethod.PERCENTILE, percentile=1.5)


def test_scheme_specific_checks() -> None:
    assert AdaLogConfig().range_method is RangeMethod.FPCS and AdaLogConfig().matmul_granularity == PerChannel(1)
    with pytest.raises(QuantConfigError, match="q range"):
        AdaLogConfig(q_min=50, q_max=20)
    with pytest.raises(QuantConfigError, match="conv_input_bits"):
        AdaLogConfig(conv_input_bits=5)
    assert SULQConfig().sulq_steps is SULQSteps.PAPER
    assert SULQConfig(sulq_steps=SULQSteps.CODE_FORWARD).sulq_steps is SULQSteps.CODE_FORWARD
    with pytest.raises(QuantConfigError, match="SULQSteps"):
        SULQConfig(sulq_steps="paper")  # type: ignore[arg-type]
    with pytest.raises(QuantConfigError, match="etas"):
        SULQConfig(etas=(0.1, -1.0))


@pytest.mark.parametrize("cls", CONFIGS)
def test_builtin_handlers_are_registered(cls: type[QuantConfig]) -> None:
    from mobilevit_deploy.quant.capture import Calibration

    handler = get_quant_handler(cls())
    table = handler(torch.nn.Identity(), cls(), Calibration([], {}))  # nothing to quantize → empty table
    assert isinstance(table, QuantTable) and len(table) == 0


def test_registry_decorator_and_unknown_config() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class MyConfig(QuantConfig):
        pass

    with pytest.raises(QuantConfigError, match="no quantization handler is registered for MyConfig") as info:
        get_quant_handler(MyConfig())
    assert "AdaLogConfig" in str(info.value)  # the hint lists what is known

    def handle(model: torch.nn.Module, config: MyConfig, calib: object) -> str:
        return "done"

    assert register_quant_handler(MyConfig)(handle) is handle  # returned unchanged, still usable by name
    assert get_quant_handler(MyConfig())(None, MyConfig(), None) == "done"
    register_quant_handler(MyConfig)(handle)  # idempotent for the same function
    with pytest.raises(ValueError, match="already has handler"):
        register_quant_handler(MyConfig)(lambda *a: None)
    with pytest.raises(TypeError):
        register_quant_handler(dict)  # type: ignore[arg-type]


def _table() -> QuantTable:
    scale32 = torch.tensor([0.1, 1 / 3, 2.7e-5], dtype=torch.float32)
    return QuantTable([
        QuantPoint("backbone.0.conv", TensorRole.WEIGHT, QuantKind.UNIFORM_ASYM, 4, PerChannel(0),
                   scale=scale32.tolist(), zero_point=[8, 7, 9]),
        QuantPoint("backbone.0.conv", TensorRole.INPUT, QuantKind.UNIFORM_SYM, 8, scale=[0.02], zero_point=[0]),
        QuantPoint("trans.0.attn.matmul1", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 4, PerHead(1, 2),
                   scale=[0.5, 0.25], zero_point=[8, 8], input_index=1),
        QuantPoint("trans.0.attn.softmax", TensorRole.SOFTMAX, QuantKind.ADALOG, 4, scale=[1.0], log_q=23),
        QuantPoint("trans.0.mlp.act", TensorRole.GELU_OUT, QuantKind.ADALOG, 4, scale=[2.5], log_q=40,
                   shift=0.16997124254703522),
        QuantPoint("trans.1.attn.softmax", TensorRole.SOFTMAX, QuantKind.SULQ, 4, eta=0.001,
                   log_min=-9.965784284662087, log_max=0.0, sulq_steps=SULQSteps.PAPER),
        QuantPoint("trans.1.attn.softmax2", TensorRole.SOFTMAX, QuantKind.LOG2, 3, scale=[1.0]),
    ])


def test_table_round_trip_is_exact(tmp_path: Path) -> None:
    table = _table()
    path = table.save(tmp_path / "sub" / "quant_table.json")
    assert [p.name for p in path.parent.iterdir()] == ["quant_table.json"]  # no temporary left behind
    loaded = QuantTable.load(path)
    assert loaded == table and len(loaded) == 7
    w = loaded.get("backbone.0.conv", "weight")
    assert torch.equal(torch.tensor(w.scale, dtype=torch.float32),
                       torch.tensor([0.1, 1 / 3, 2.7e-5], dtype=torch.float32))
    assert loaded.get("trans.1.attn.softmax", TensorRole.SOFTMAX).sulq_steps is SULQSteps.PAPER
    # an exporter reproduces the fake-quant integers from the row alone
    x = torch.randn(3, 5)
    q = quantize_uniform(x, torch.tensor(w.scale), torch.tensor(w.zero_point, dtype=torch.float32), w.bits,
                         symmetric=False, granularity=w.granularity)
    assert dequantize_uniform(q, torch.tensor(w.scale), torch.tensor(w.zero_point), granularity=w.granularity).shape \
        == x.shape


def test_table_rejects_inconsistent_points() -> None:
    with pytest.raises(QuantConfigError, match="needs log_q"):
        QuantPoint("a", TensorRole.SOFTMAX, QuantKind.ADALOG, 4, scale=[1.0])
    with pytest.raises(QuantConfigError, match="do not fit"):
        QuantPoint("a", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 4, PerHead(1, 2), scale=[1.0], zero_point=[0])
    with pytest.raises(QuantConfigError, match="zero point"):
        QuantPoint("a", TensorRole.INPUT, QuantKind.UNIFORM_ASYM, 4, scale=[1.0])
    with pytest.raises(QuantConfigError, match="positive"):
        QuantPoint("a", TensorRole.INPUT, QuantKind.UNIFORM_SYM, 4, scale=[0.0])
    with pytest.raises(QuantConfigError, match="bits"):
        QuantPoint("a", TensorRole.INPUT, QuantKind.UNIFORM_SYM, 12, scale=[1.0])
    with pytest.raises(QuantConfigError, match="needs eta"):
        QuantPoint("a", TensorRole.SOFTMAX, QuantKind.SULQ, 4, log_min=0.0, log_max=1.0, sulq_steps=SULQSteps.PAPER)
    with pytest.raises(QuantConfigError, match="duplicate"):
        QuantTable([QuantPoint("a", "input", "log2", 4, scale=[1.0])] * 2)


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "t.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not readable JSON"),
    ([1, 2], "not a quantization table"),
    ({"format": "something-else", "version": 1, "points": []}, "not a quantization table"),
    ({"format": "mobilevit-deploy.quant-table", "version": 99, "points": []}, "version 99"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1, "points": {}}, "must be a list"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1, "points": [7]}, "point 0 is malformed"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1,
      "points": [{"module": "a", "role": "input", "kind": "cubic", "bits": 4, "scale": [1.0]}]}, "point 0"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1,
      "points": [{"module": "a", "role": "softmax", "kind": "adalog", "bits": 4, "scale": [1.0]}]}, "log_q"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1,
      "points": [{"module": "a", "role": "input", "kind": "log2", "bits": 4, "scale": [1.0], "extra": 1}]}, "extra"),
    ({"format": "mobilevit-deploy.quant-table", "version": 1,
      "points": [{"module": "a", "role": "input", "kind": "log2", "bits": 4, "scale": [1.0],
                  "granularity": {"type": "per_row"}}]}, "granularity"),
])
def test_load_reports_malformed_files(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(QuantTableError, match=message) as info:
        QuantTable.load(_write(tmp_path, content))
    assert isinstance(info.value, DeployError) and "t.json" in str(info.value)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QuantTableError, match="does not exist"):
        QuantTable.load(tmp_path / "nope.json")
