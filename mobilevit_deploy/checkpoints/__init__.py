"""Demo checkpoints shipped with the package, trained on the generated shapes task by ``tools/train_demo.py``.

Why: with nothing downloadable, these are the default weights of the main job and the ground on which
quantizers are compared. They are in the official mmseg format (``{'meta', 'state_dict'}``, official key names,
the official 150-class head) and load strictly through ``create_model(name, checkpoint=...)``.
"""

from __future__ import annotations

import json
from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent
DEMO_MODELS = ("topformer_tiny", "casvit_xs_seg")


def checkpoint_filename(model_name: str) -> str:
    return f"{model_name}_shapes.pth"


def default_checkpoint(model_name: str) -> Path | None:
    """The shipped demo checkpoint for ``model_name``, or ``None`` if the package ships none for it."""
    if model_name not in DEMO_MODELS:
        return None
    path = CHECKPOINT_DIR / checkpoint_filename(model_name)
    return path if path.is_file() else None


def demo_meta(model_name: str) -> dict:
    """How the shipped checkpoint was made and its held-out score (the JSON written next to it), or ``{}``."""
    path = default_checkpoint(model_name)
    sidecar = path.with_suffix(".json") if path else None
    return json.loads(sidecar.read_text()) if sidecar and sidecar.is_file() else {}


def resolve_checkpoint(model_name: str, given: Path | None, random_weights: bool = False
                       ) -> tuple[Path | None, str | None]:
    """The checkpoint a command should load and, when it is the shipped demo one, the line that says so."""
    if given is not None or random_weights:
        return given, None
    path = default_checkpoint(model_name)
    if path is None:
        return None, None
    score = demo_meta(model_name).get("val_mIoU")
    note = f" (held-out mIoU {score:.3f} on the generated shapes task)" if isinstance(score, float) else ""
    return path, f"no --checkpoint given: using the shipped demo checkpoint {path.name}{note}"
