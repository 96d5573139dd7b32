"""The integer-only I-Segmenter (issue 9 item 3): PTQ of a float ``isegmenter_*`` model into integer layers built
on the I-ViT kernels of ``quant.ivit``."""

from .convert import convert_segmenter
from .model import IntSegmenter
from .ranges import Ranges, collect_ranges

__all__ = ["IntSegmenter", "Ranges", "collect_ranges", "convert_segmenter"]
