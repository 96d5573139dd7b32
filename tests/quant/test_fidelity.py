"""Fidelity helpers: agreement/label mIoU, the report's JSON and the PNG writer."""

from __future__ import annotations

import json
import zlib

import numpy as np
import torch

from mobilevit_deploy.quant.fidelity import FidelityReport, agreement_miou, label_miou
from mobilevit_deploy.quant.png import bar_chart, write_png


def test_agreement_miou_hand_case() -> None:
    ref = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    # class 0: inter 1, union 2 → 0.5; class 1: inter 2, union 3 → 2/3
    assert abs(agreement_miou(pred, ref, 3) - (0.5 + 2 / 3) / 2) < 1e-12
    assert agreement_miou(ref, ref, 3) == 1.0


def test_label_miou_ignores_255_and_upsamples() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, :, 0], logits[0, 1, :, 1] = 1.0, 1.0  # ×2 bilinear: columns 0-1 → 0, 2-3 → 1
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 255], [0, 0, 1, 1], [0, 0, 1, 1]]])
    assert label_miou(logits, labels, 2) == 1.0


def test_report_json_and_png(tmp_path) -> None:
    rep = FidelityReport(points=[{"module": "a", "role": "weight", "input_index": 0, "kind": "uniform_asym",
                                  "bits": 8, "sqnr_db": 40.0},
                                 {"module": "b", "role": "softmax", "input_index": 0, "kind": "adalog",
                                  "bits": 4, "sqnr_db": float("inf")}], end_to_end_sqnr_db=30.0,
                         agreement_miou=0.9, pixel_agreement=0.95, images=2)
    rep.save(tmp_path / "f.json", tmp_path / "f.png")
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["points"][1]["sqnr_db"] == "inf" and data["end_to_end_sqnr_db"] == 30.0
    assert "end-to-end SQNR" in rep.summary()


def test_png_writer_decodes() -> None:
    img = bar_chart([10.0, 20.0, 5.0], [0, 1, 2], height=50)
    assert img.shape == (50, 16, 3)


def test_png_bytes_round_trip(tmp_path) -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = write_png(tmp_path / "x.png", rgb).read_bytes()
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert raw == b"\x00" + rgb[0].tobytes() + b"\x00" + rgb[1].tobytes()
