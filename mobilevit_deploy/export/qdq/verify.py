"""How closely ONNX Runtime running a QDQ file follows the fake-quant PyTorch model it was exported from.

Why not bit-exactness: ORT and PyTorch sum a conv's products in different orders, so a float accumulator can land
on the other side of a quantizer's rounding boundary; that 1-code flip then travels down the network. With ORT's
graph optimizations off the two mostly agree bit for bit; with them on (prepacked weights), the difference is a
noise far below the quantization noise itself. So we report max |Δ|, SQNR and argmax agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilevit_deploy.quant.metrics import sqnr_db

from ..verify import run_onnxruntime


@dataclass(frozen=True)
class QDQAgreement:
    """ORT output vs the fake-quant model's: max |Δ|, SQNR (dB, +inf when identical), argmax agreement (dim 1)."""

    max_abs_diff: float
    sqnr_db: float
    argmax_agreement: float
    images: int

    def ok(self, tolerance: dict[str, float]) -> bool:
        return self.sqnr_db >= tolerance["sqnr_db"] and self.argmax_agreement >= tolerance["argmax_agreement"]

    def to_dict(self) -> dict[str, float | int | str]:
        d = asdict(self)
        d["sqnr_db"] = "inf" if self.sqnr_db == float("inf") else round(self.sqnr_db, 3)
        return d


def compare_with_fake_quant(onnx_model: str | Path | bytes, fake_quant: nn.Module,
                            inputs: torch.Tensor) -> QDQAgreement:
    """Run every image of ``inputs`` [N, 3, H, W] through ORT (one thread) and the fake-quant model."""
    outs, refs = [], []
    with torch.no_grad():
        for x in inputs.split(1):
            outs.append(torch.from_numpy(run_onnxruntime(onnx_model, np.ascontiguousarray(x.numpy()))))
            refs.append(fake_quant(x))
    out, ref = torch.cat(outs), torch.cat(refs)
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean()) if out.dim() > 1 else 1.0
    return QDQAgreement(float((out - ref).abs().max()), sqnr_db(ref, out), agree, int(inputs.shape[0]))
