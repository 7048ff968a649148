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


# Box conventions of the got10k toolkit's datasets: the toolkit passes annotation rows to the tracker
# unchanged, so the adapter shifts OTB-style 1-based boxes (OTB, UAV123, DTB70, NfS, TColor128) by one
# pixel in and out, and GOT-10k's 0-based boxes not at all.
CONVENTIONS = {"otb": np.array([1.0, 1.0, 0.0, 0.0]), "got10k": np.zeros(4)}


def experiment_convention(experiment: object) -> str:
    """The box convention of a got10k toolkit experiment; ValueError for one it does not say (e.g. VOT)."""
    from got10k.experiments import ExperimentGOT10k, ExperimentOTB

    if isinstance(experiment, ExperimentGOT10k):
        return "got10k"
    if isinstance(experiment, ExperimentOTB):  # also UAV123, DTB70, NfS, TColor128
        return "otb"
    raise ValueError(f"cannot tell the box convention of {type(experiment).__name__}; "
                     f"pass convention= one of {', '.join(CONVENTIONS)}")


class GotTracker(Got10kTracker):
    """got10k toolkit tracker: PIL RGB images in, boxes in the convention of the experiment's data.

    Give ``convention="otb"`` (1-based boxes: OTB, UAV123, DTB70, NfS, TColor128) or ``"got10k"``
    (0-based boxes), or the ``experiment`` it will run in; there is no default, since a wrong guess
    silently shifts every box by a pixel.
    """

    def __init__(self, tracker: SiamFCTracker, convention: str | None = None, experiment: object = None,
                 name: str | None = None):
        if convention is None and experiment is None:
            raise ValueError(f"GotTracker needs convention= ({', '.join(CONVENTIONS)}) or experiment=")
        derived = experiment_convention(experiment) if experiment is not None else None
        convention = convention or derived
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown box convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
        if derived is not None and derived != convention:
            raise ValueError(f"convention {convention!r} contradicts the experiment's ({derived!r})")
        super().__init__(name=name or tracker.name, is_deterministic=True)
        self.tracker = tracker
        self.convention = convention
        self.offset = CONVENTIONS[convention]

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
