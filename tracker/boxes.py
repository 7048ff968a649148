"""The check every tracker start shares: an initial box that is finite, has a size, and overlaps the frame."""
from __future__ import annotations

import numpy as np


def check_init_box(box, width: int, height: int) -> np.ndarray:
    """``box`` = [x, y, w, h] as float64, or a ValueError saying why it cannot start tracking.

    A box may stick out of the frame (a negative x is fine) but must overlap it.
    """
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"initial box must be [x, y, w, h] with w, h > 0, got {box.tolist()}")
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise ValueError(f"initial box {box.tolist()} lies outside the {width}x{height} frame")
    return box
