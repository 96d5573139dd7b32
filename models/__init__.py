"""The model zoo: TopFormer, CAS-ViT (classification and segmentation) and (I-)Segmenter, loading official
checkpoints 1:1."""

# isort: off
from . import topformer, casvit, casvit_seg, segmenter  # noqa: F401  (registers the variants, in listing order)
# isort: on
from ._checkpoint import LoadReport, load_checkpoint
from ._complexity import count_macs, count_params
from ._registry import ModelInfo, Task, create_model, list_models, model_info, register_model

__all__ = [
    "LoadReport",
    "ModelInfo",
    "Task",
    "count_macs",
    "count_params",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_info",
    "register_model",
]
