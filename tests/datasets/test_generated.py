"""The generated shapes task: a pure function of (seed, split, index), with many classes and ignore pixels."""

from __future__ import annotations

import hashlib

import numpy as np

from mobilevit_deploy.data import ShapesTask, open_dataset
from mobilevit_deploy.data.generated import IGNORE_INDEX, NUM_CLASSES, class_names, generate


def _digest(seed: int, split: str, index: int) -> str:
    image, label = generate(seed, split, index, 64)
    return hashlib.sha256(image.tobytes() + label.tobytes()).hexdigest()


def test_same_seed_same_images_and_different_seeds_or_splits_differ() -> None:
    a, b = ShapesTask(seed=3, split="val", length=2, size=96)[1], ShapesTask(seed=3, split="val", length=2, size=96)[1]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert len({_digest(0, "val", 0), _digest(1, "val", 0), _digest(0, "train", 0), _digest(0, "val", 1)}) == 4


def test_images_and_labels_are_well_formed_and_use_many_classes() -> None:
    task = ShapesTask(seed=0, split="train", length=24, size=128)
    seen = np.zeros(256, bool)
    for sample in task:
        assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.uint8
        assert sample.label.shape == (128, 128) and sample.label.dtype == np.uint8
        seen[np.unique(sample.label)] = True
    assert set(np.flatnonzero(seen)) <= {*range(NUM_CLASSES), IGNORE_INDEX}
    assert seen[IGNORE_INDEX] and seen[:NUM_CLASSES].sum() >= 0.8 * NUM_CLASSES
    assert len(class_names()) == NUM_CLASSES == 24


def test_open_dataset_by_name() -> None:
    task = open_dataset("shapes:test")
    assert isinstance(task, ShapesTask) and task.split == "test" and task.num_classes == NUM_CLASSES
