"""QDQ export end to end on a small conv + attention + MLP model (every layer kind and quantizer kind, seconds to
export): INT4 weight storage, SULQ and per-head points, and the same file compiled and run by TVM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from mobilevit_deploy.export.qdq import export_qdq_onnx
from mobilevit_deploy.models._layers import MatMul
from mobilevit_deploy.quant import Log2Config, PerChannel, QuantKind, RangeMethod, SULQConfig, TensorRole
from mobilevit_deploy.quant.api import quantize
from mobilevit_deploy.quant.fake_quant import quantize_point
from mobilevit_deploy.quant.fold import fold_batchnorm
from mobilevit_deploy.quant.metrics import sqnr_db

SIZE = 32


class SmallNet(nn.Module):
    """conv-BN-ReLU, depthwise, 1×1; two-head attention over the 16×16 tokens (softmax → matmul); a GELU MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn, self.act = nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()
        self.dw, self.pw = nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.Conv2d(16, 32, 1)
        self.to_q, self.to_k = nn.Conv2d(32, 32, 1), nn.Conv2d(32, 32, 1)
        self.matmul_qk, self.softmax, self.matmul_av = MatMul(), nn.Softmax(-1), MatMul()
        self.fc1, self.gelu, self.fc2 = nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32)
        self.head = nn.Conv2d(32, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.act(self.dw(self.act(self.bn(self.stem(x))))))
        b, c, h, w = x.shape
        heads = (b, 2, c // 2, h * w)
        q, k = self.to_q(x).reshape(heads).transpose(2, 3), self.to_k(x).reshape(heads)  # [B, 2, N, d], [B, 2, d, N]
        attn = self.softmax(self.matmul_qk(q, k) * (c // 2) ** -0.5)
        y = self.matmul_av(attn, x.reshape(heads).transpose(2, 3))  # [B, 2, N, d]
        y = y.transpose(1, 2).reshape(b, h * w, c)
        y = self.fc2(self.gelu(self.fc1(y))).transpose(1, 2).reshape(b, c, h, w)
        return self.head(x + y)


@pytest.fixture(scope="module")
def small() -> nn.Module:
    torch.manual_seed(0)
    net = SmallNet().eval()
    with torch.no_grad():
        net.bn.running_mean.normal_(0, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.normal_(1.0, 0.3)
    return fold_batchnorm(net, torch.zeros(1, 3, SIZE, SIZE))


@pytest.fixture(scope="module")
def calib() -> torch.Tensor:
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_int4_weights_at_opset_21(small: nn.Module, calib: torch.Tensor, tmp_path: Path) -> None:
    config = Log2Config(weight_bits=4, act_bits=8, attn_bits=4, symmetric_weights=True, first_last_bits=None,
                        log2_post_gelu=True, range_method=RangeMethod.MINMAX)
    table = quantize(small, config, calib).table
    assert {p.kind for p in table if p.role is not TensorRole.WEIGHT} >= {QuantKind.LOG2}
    report = export_qdq_onnx(small, table, tmp_path / "w4.onnx", SIZE)
    assert report.weight_storage == {"INT4": 8}
    model = onnx.load(str(tmp_path / "w4.onnx"))
    int4 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT4]
    assert len(int4) == 8 and all(t.name.endswith(".weight_codes") for t in int4)
    assert all(len(t.raw_data) == (np.prod(t.dims) + 1) // 2 for t in int4)  # two codes per byte
    weights = [p for p in table if p.role is TensorRole.WEIGHT]
    codes = onnx.numpy_helper.to_array(next(t for t in int4 if t.name == f"{weights[0].module}.weight_codes"))
    assert np.array_equal(codes.astype(np.int8), quantize_point(small.get_submodule(weights[0].module).weight,
                                                                weights[0]).numpy())
    # ORT may run parts through its integer kernels (QLinearConv, QGemm), whose requantization rounds differently
    # from the float simulation (≥ 40 dB measured on this untrained net with other tables)
    assert report.agreement.sqnr_db >= 35 and report.agreement.argmax_agreement >= 0.99


@pytest.mark.slow
def test_sulq_per_head_model_runs_in_tvm_as_in_the_fake_quant_model(small: nn.Module, calib: torch.Tensor,
                                                                       tmp_path: Path) -> None:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    config = SULQConfig(weight_bits=8, act_bits=8, attn_bits=4, symmetric_weights=True,
                        matmul_granularity=PerChannel(1))
    q = quantize(small, config, calib)
    assert any(p.kind is QuantKind.SULQ for p in q.table)
    assert any(isinstance(p.granularity, PerChannel) and p.role is TensorRole.INPUT for p in q.table)
    report = export_qdq_onnx(small, q.table, tmp_path / "sulq.onnx", SIZE, opset=18)  # no INT4 below 21
    assert report.weight_storage == {"INT8": 8}
    assert report.agreement.sqnr_db >= 35
    executable = tvm.compile(from_onnx(onnx.load(str(tmp_path / "sulq.onnx")), keep_params_in_input=False),
                             target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    x = calib[:4]
    got = torch.from_numpy(np.concatenate([vm["main"](tvm.runtime.tensor(x[i:i + 1].numpy())).numpy()
                                           for i in range(len(x))]))
    with torch.no_grad():
        ref = q(x)
    # TVM dequantizes and computes in float (no integer fusion), so only summation order differs
    assert sqnr_db(ref, got) >= 50
    assert float((ref.argmax(1) == got.argmax(1)).float().mean()) >= 0.995
