"""Datasets (ADE20K layout, plain image folders, the generated shapes task) and the one preprocessing pipeline."""

from .ade20k import ADE20K
from .errors import DataError
from .generated import ShapesTask
from .image_folder import ImageFolder
from .open import Dataset, open_dataset
from .preprocess import Preprocess, logits_to_label
from .sample import Sample

__all__ = ["ADE20K", "DataError", "Dataset", "ImageFolder", "Preprocess", "Sample", "ShapesTask", "logits_to_label",
           "open_dataset"]
