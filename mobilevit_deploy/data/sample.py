"""The one record every dataset yields, so metrics, eval and calibration never care where data came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """An RGB image (H×W×3 uint8), its label (H×W uint8 class ids, 255 = ignore) when known, and where it came from."""

    name: str
    image: np.ndarray
    label: np.ndarray | None = None
    path: Path | None = None
