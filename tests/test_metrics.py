"""mIoU as mmseg computes it, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobilevit_deploy.metrics import ConfusionMatrix, agreement, mean_iou

LABEL = np.array([[0, 0, 1], [1, 255, 2]])
PRED = np.array([[0, 1, 1], [1, 3, 0]])


def test_hand_computed_confusion_case() -> None:
    # scored pixels (label, pred): (0,0) (0,1) (1,1) (1,1) (2,0); the ignored pixel's prediction 3 does not count.
    # class 0: I=1, label 2, pred 2 -> 1/3; class 1: I=2, label 2, pred 3 -> 2/3; class 2: I=0, U=1 -> 0;
    # class 3 is absent from labels and (scored) predictions -> NaN, left out of the mean, as mmseg's nanmean.
    r = mean_iou([PRED], [LABEL], num_classes=4)
    np.testing.assert_allclose(r.iou[:3], [1 / 3, 2 / 3, 0.0])
    assert math.isnan(r.iou[3])
    assert r.miou == pytest.approx(1 / 3)
    assert r.pixel_acc == pytest.approx(3 / 5)
    assert r.macc == pytest.approx((1 / 2 + 1 + 0) / 3)
    d = r.to_dict()
    assert d["classes_scored"] == 3 and d["per_class_IoU"]["3"] is None and d["pixels"] == 5


def test_accumulates_over_images_not_mean_of_images() -> None:
    a = mean_iou([PRED, PRED], [LABEL, LABEL], num_classes=4)
    assert a.miou == pytest.approx(1 / 3) and a.pixels == 10
    # image 2 perfect on class 2 only: class 2 IoU = 1 / (1 + 0 + 1) over the dataset, not mean of per-image IoUs
    b = mean_iou([PRED, np.array([[2]])], [LABEL, np.array([[2]])], num_classes=4)
    assert b.iou[2] == pytest.approx(1 / 2)


def test_prediction_outside_the_classes_is_wrong_and_nobodys() -> None:
    r = mean_iou([np.array([[0, 149]])], [np.array([[0, 1]])], num_classes=2)
    np.testing.assert_allclose(r.iou, [1.0, 0.0])
    assert r.pixel_acc == pytest.approx(0.5)


def test_label_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="label ids"):
        ConfusionMatrix(4).update(np.zeros((1, 1)), np.array([[4]]))


def test_agreement_is_one_for_identical_predictions_and_symmetric_in_iou() -> None:
    assert agreement([PRED], [PRED], num_classes=4).miou == pytest.approx(1.0)
    other = np.where(PRED == 3, 2, PRED)
    ab, ba = agreement([PRED], [other], 4), agreement([other], [PRED], 4)
    assert ab.miou == pytest.approx(ba.miou) and ab.miou < 1
