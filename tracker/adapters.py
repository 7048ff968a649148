"""Adapters to other toolkits' tracker protocols: got10k's ``Tracker`` and pytracking's."""
from __future__ import annotations

import cv2
import numpy as np
from got10k.trackers import Tracker as Got10kTracker

from tracker.siamfc import SiamFCTracker


def _bgr(image) -> np.ndarray:
    """PIL RGB image or RGB array -> OpenCV BGR array."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2BGR)


class GotTracker(Got10kTracker):
    """got10k toolkit tracker: PIL RGB images, boxes as the toolkit reads them from annotation files.

    The toolkit passes OTB-style 1-based boxes unchanged (siamfc-pytorch subtracts 1 on init), so by
    default boxes are shifted by one pixel in and out; pass ``one_based=False`` for 0-based data.
    """

    def __init__(self, tracker: SiamFCTracker, name: str | None = None, one_based: bool = True):
        super().__init__(name=name or tracker.name, is_deterministic=True)
        self.tracker = tracker
        self.offset = np.array([1.0, 1.0, 0.0, 0.0]) if one_based else np.zeros(4)

    def init(self, image, box) -> None:
        self.tracker.init(_bgr(image), np.asarray(box, dtype=np.float64) - self.offset)

    def update(self, image) -> np.ndarray:
        return self.tracker.update(_bgr(image)) + self.offset


class PytrackingTracker:
    """pytracking protocol: ``initialize(image, info)`` / ``track(image, info)`` on RGB arrays."""

    def __init__(self, tracker: SiamFCTracker):
        self.tracker = tracker

    def initialize(self, image: np.ndarray, info: dict) -> dict:
        self.tracker.init(_bgr(image), info["init_bbox"])
        return {}

    def track(self, image: np.ndarray, info: dict | None = None) -> dict:
        box = self.tracker.update(_bgr(image))
        return {"target_bbox": [float(v) for v in box], "confidence": self.tracker.confidence}
