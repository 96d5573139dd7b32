"""quantize(): where points go, W8A8 end-to-end fidelity, table round trip, AdaLog specifics, bad input."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from mobilevit_deploy.quant import AdaLogConfig, QuantConfigError, QuantKind, TensorRole, UniformConfig, sqnr_db
from mobilevit_deploy.quant.api import QuantizedModel, quantize
from mobilevit_deploy.quant.fidelity import fidelity
from mobilevit_deploy.quant.table import QuantTable

W8A8 = UniformConfig(weight_bits=8, act_bits=8, attn_bits=8)


def _conv_paths(model: nn.Module) -> tuple[str, ...]:
    return tuple(p for p, m in model.named_modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="module")
def tf_w8a8(topformer: nn.Module, calib64: torch.Tensor) -> QuantizedModel:
    return quantize(topformer, W8A8, calib64)


def test_w8a8_topformer_close_to_fp32(topformer: nn.Module, calib64: torch.Tensor, tf_w8a8: QuantizedModel) -> None:
    # 8-bit uniform noise is ~-50 dB per tensor; ~70 chained layers accumulate it to ~35-45 dB, so 25 dB is a safe
    # floor that still catches a wrong scale or a misplaced quantizer (which give < 15 dB)
    with torch.no_grad():
        ref, out = topformer(calib64), tf_w8a8(calib64)
    assert sqnr_db(ref, out) > 25
    assert (ref.argmax(1) == out.argmax(1)).float().mean() > 0.95


def test_original_model_untouched(topformer: nn.Module, tf_w8a8: QuantizedModel) -> None:
    assert not any(type(m).__name__.startswith("Quant") for m in topformer.modules())


def test_points_cover_every_conv_and_matmul(topformer: nn.Module, tf_w8a8: QuantizedModel) -> None:
    convs = _conv_paths(topformer)
    matmuls = [p for p, m in topformer.named_modules() if type(m).__name__ == "MatMul"]
    keys = {(p.module, p.role, p.input_index) for p in tf_w8a8.table}
    for c in convs:
        assert (c, TensorRole.WEIGHT, 0) in keys and (c, TensorRole.INPUT, 0) in keys
    for mm in matmuls:
        assert (mm, TensorRole.INPUT, 1) in keys
        role = TensorRole.SOFTMAX if mm.endswith("matmul_av") else TensorRole.INPUT
        assert (mm, role, 0) in keys
    weights = [p for p in tf_w8a8.table if p.role is TensorRole.WEIGHT]
    assert all(len(p.scale) == topformer.get_submodule(p.module).out_channels for p in weights)


def test_first_and_last_layer_8_bit(topformer: nn.Module, calib64: torch.Tensor) -> None:
    q = quantize(topformer, UniformConfig(range_method=UniformConfig().range_method.MINMAX), calib64[:2])
    layers = [p for p in q.table if p.role is TensorRole.WEIGHT]
    assert layers[0].bits == 8 and layers[-1].bits == 8 and layers[1].bits == 4


def test_table_round_trip_same_forward(tmp_path, topformer: nn.Module, calib64: torch.Tensor,
                                       tf_w8a8: QuantizedModel) -> None:
    path = tf_w8a8.save_table(tmp_path / "q.json")
    loaded = QuantTable.load(path)
    assert loaded == tf_w8a8.table
    again = QuantizedModel.from_table(topformer, path)
    with torch.no_grad():
        assert torch.equal(again(calib64), tf_w8a8(calib64))


def test_w8a8_casvit_close_to_fp32(casvit: nn.Module, calib64: torch.Tensor) -> None:
    q = quantize(casvit, W8A8, calib64)
    rep = fidelity(casvit, q.module, q.table, calib64)
    assert rep.end_to_end_sqnr_db > 25 and rep.pixel_agreement > 0.95
    gelu_inputs = [p for p in q.table if p.module.endswith("mlp.fc2") and p.role is TensorRole.INPUT]
    assert gelu_inputs and all(p.kind is QuantKind.UNIFORM_ASYM for p in gelu_inputs)  # uniform: no log quantizer


def _only(model: nn.Module, keep: str) -> tuple[str, ...]:
    return tuple(p for p in _conv_paths(model) if p != keep)


def test_adalog_post_softmax_scale_one_and_beats_uniform(topformer: nn.Module) -> None:
    skip = _conv_paths(topformer)  # quantize the matmuls only: fast, and isolates the attention points
    calib = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))  # 16 tokens (64 px has one)
    res = {}
    for cfg in (UniformConfig(skip=skip), AdaLogConfig(skip=skip)):
        q = quantize(topformer, cfg, calib)
        rep = fidelity(topformer, q.module, q.table, calib)
        res[type(cfg).__name__] = [r["sqnr_db"] for r in rep.points if r["role"] == "softmax"]
        if isinstance(cfg, AdaLogConfig):
            soft = [p for p in q.table if p.role is TensorRole.SOFTMAX]
            assert len(soft) == 4 and all(p.kind is QuantKind.ADALOG and p.scale == [1.0] for p in soft)
            assert all(10 <= p.log_q < 138 for p in soft)
    assert all(a > u for a, u in zip(res["AdaLogConfig"], res["UniformConfig"], strict=True)), res


def test_adalog_post_gelu_reparam_leaves_output_unchanged(casvit: nn.Module, calib64: torch.Tensor) -> None:
    target = "backbone.network.0.0.mlp.fc2"
    q = quantize(casvit, AdaLogConfig(skip=_only(casvit, target)), calib64[:2])
    point = q.table.get(target, TensorRole.GELU_OUT)
    assert point.kind is QuantKind.ADALOG and point.shift_folded and point.shift == pytest.approx(0.16997, abs=1e-5)
    folded = q.module.get_submodule(target).double()
    unfolded_point = type(point)(**{**point.__dict__, "shift_folded": False})
    from mobilevit_deploy.quant.fake_quant import QuantConv2d

    fc2 = casvit.get_submodule(target)
    unfolded = QuantConv2d.from_float(fc2, q.table.get(target, TensorRole.WEIGHT), unfolded_point).double()
    folded.set_points(folded.weight_point, point)  # recompute the folded bias in float64
    x = torch.nn.functional.gelu(torch.randn(2, fc2.in_channels, 8, 8, dtype=torch.float64) * 2)
    with torch.no_grad():
        a, b = folded(x), unfolded(x)
    assert folded.bias_delta is not None and unfolded.bias_delta is None
    assert (a - b).abs().max() <= 1e-6


def test_bits_outside_supported_set() -> None:
    with pytest.raises(QuantConfigError, match="not supported"):
        AdaLogConfig(weight_bits=5)
    with pytest.raises(QuantConfigError, match="not supported"):
        UniformConfig(overrides={"x": 7})


def test_empty_calibration_set(topformer: nn.Module) -> None:
    with pytest.raises(QuantConfigError, match="empty"):
        quantize(topformer, W8A8, [])


def test_wrong_size_image_is_resized_with_warning(topformer: nn.Module, calib64: torch.Tensor) -> None:
    skip = _conv_paths(topformer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize(topformer, UniformConfig(skip=skip), [calib64[:1], torch.randn(1, 3, 80, 72)])
    assert any("resized" in str(w.message) for w in caught)
    assert len(q.table) > 0


def test_config_naming_missing_point(topformer: nn.Module, calib64: torch.Tensor) -> None:
    with pytest.raises(QuantConfigError, match="not a quantization point") as err:
        quantize(topformer, UniformConfig(overrides={"backbone.trans.transformer_blocks.0.attn.matmul_qkk": 8}),
                 calib64[:1])
    assert "matmul_qk" in (err.value.hint or "")


def test_fidelity_report_numbers(topformer: nn.Module, calib64: torch.Tensor, tf_w8a8: QuantizedModel,
                                 tmp_path) -> None:
    rep = fidelity(topformer, tf_w8a8.module, tf_w8a8.table, calib64)
    assert len(rep.points) == len(tf_w8a8.table)
    # > 20 dB everywhere at 8 bits; +inf where the tensor is exactly representable (1-token softmax at 64 px)
    assert all(not math.isnan(p["sqnr_db"]) and p["sqnr_db"] > 20 for p in rep.points)
    rep.save(tmp_path / "f.json", tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
