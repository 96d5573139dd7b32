"""BN folding before quantization: what gets folded, that the output is kept, and that tables know their state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mobilevit_deploy.quant import QuantTableError, UniformConfig
from mobilevit_deploy.quant.api import QuantizedModel, apply_table, quantize
from mobilevit_deploy.quant.fold import FOLDED_ATTR, conv_bn_pairs, fold_batchnorm, folding_state
from mobilevit_deploy.quant.table import QuantTable

MINMAX = UniformConfig(weight_bits=8, act_bits=8, attn_bits=8, range_method=UniformConfig().range_method.MINMAX)


def _bns(model: nn.Module) -> list[str]:
    return [p for p, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.fixture(scope="module")
def tf_folded(topformer: nn.Module) -> nn.Module:
    return fold_batchnorm(topformer)


def test_topformer_every_bn_follows_a_conv_and_is_folded(topformer: nn.Module, tf_folded: nn.Module) -> None:
    assert len(_bns(topformer)) == 61 and _bns(tf_folded) == []
    folded = getattr(tf_folded, FOLDED_ATTR)
    assert len(folded) == 61 and "backbone.tpm.stem.0.c" in folded  # Conv2d_BN's conv, path unchanged
    conv = tf_folded.get_submodule("backbone.tpm.stem.0.c")
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None  # the bias-free conv gained the BN's shift
    assert isinstance(tf_folded.get_submodule("backbone.tpm.stem.0.bn"), nn.Identity)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref, got = topformer(x), tf_folded(x)
    assert float((ref - got).abs().max()) <= 1e-4 * float(ref.abs().max())


def test_casvit_prenorms_stay(casvit: nn.Module) -> None:
    """CAS-ViT's norm1/norm2 normalize a residual sum before a conv: not a conv → BN pair, so they stay."""
    pairs = conv_bn_pairs(casvit)
    assert ("backbone.patch_embed.0", "backbone.patch_embed.1") in pairs
    assert not any(bn.endswith(("norm1", "norm2")) for _, bn in pairs)
    folded = fold_batchnorm(casvit)
    assert len(_bns(folded)) == len(_bns(casvit)) - len(pairs) > 0
    assert folding_state(casvit) is False and folding_state(folded) is True


def test_original_untouched_and_folding_twice_is_a_no_op(topformer: nn.Module, tf_folded: nn.Module) -> None:
    assert len(_bns(topformer)) == 61 and not hasattr(topformer, FOLDED_ATTR)
    again = fold_batchnorm(tf_folded)
    assert getattr(again, FOLDED_ATTR) == () and folding_state(again) is None  # nothing left: any table fits


def test_a_conv_output_used_twice_is_refused() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
            self.bn.running_mean.fill_(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y  # folding would change the second use of y

    with pytest.raises(RuntimeError, match="changed the output"):
        fold_batchnorm(Shared().eval())


@pytest.fixture(scope="module")
def folded_table(tf_folded: nn.Module, calib64: torch.Tensor) -> QuantTable:
    return quantize(tf_folded, MINMAX, calib64[:2]).table


def test_table_records_the_folding_state_and_round_trips(folded_table: QuantTable, tmp_path: Path) -> None:
    assert folded_table.bn_folded
    path = folded_table.save(tmp_path / "q.json")
    assert json.loads(path.read_text())["bn_folded"] is True
    assert QuantTable.load(path) == folded_table and QuantTable.load(path).bn_folded
    assert QuantTable(folded_table) != folded_table  # the state is part of a table's identity


def test_old_tables_without_the_field_load_as_unfolded(tmp_path: Path) -> None:
    old = {"format": "mobilevit-deploy.quant-table", "version": 1, "points": []}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert QuantTable.load(tmp_path / "old.json").bn_folded is False
    (tmp_path / "bad.json").write_text(json.dumps({**old, "bn_folded": "yes"}))
    with pytest.raises(QuantTableError, match="bn_folded"):
        QuantTable.load(tmp_path / "bad.json")


def test_a_table_only_applies_to_a_model_in_its_folding_state(topformer: nn.Module, tf_folded: nn.Module,
                                                              folded_table: QuantTable) -> None:
    with pytest.raises(QuantTableError, match="BN-folded model, but this model still has BatchNorm"):
        apply_table(topformer, folded_table)
    unfolded_table = QuantTable(folded_table, bn_folded=False)  # as quantize() marks a table made without folding
    with pytest.raises(QuantTableError, match="this model is BN-folded"):
        QuantizedModel.from_table(tf_folded, unfolded_table)
    assert isinstance(apply_table(tf_folded, folded_table), nn.Module)


def test_quantize_marks_the_table_with_the_model_state() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert not quantize(net, MINMAX, x).table.bn_folded
    folded = fold_batchnorm(net, x[:1])
    assert isinstance(folded[1], nn.Identity) and quantize(folded, MINMAX, x).table.bn_folded
    assert not quantize(nn.Sequential(nn.Conv2d(3, 4, 1)), MINMAX, x).table.bn_folded  # nothing to fold
