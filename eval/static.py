"""The `static` baseline tracker: it reports the initial box on every frame, the floor any tracker must
beat."""
from __future__ import annotations

import numpy as np


class StaticTracker:
    """Returns the first box forever; costs nothing, so ``ops`` is 0 and it has no ``budget``."""

    name = "static"
    ops = 0
    budget = None

    def __init__(self) -> None:
        self.box = np.full(4, np.nan)

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        """Remember the target box ``[x, y, w, h]`` given on the first frame."""
        self.box = np.asarray(box, dtype=float).reshape(4).copy()

    def update(self, frame: np.ndarray) -> np.ndarray:
        """Return the first frame's box again."""
        return self.box.copy()
