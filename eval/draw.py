"""Drawing boxes of the ground truth and of several trackers on a frame, with a legend (OpenCV, BGR)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

GT_COLOR = (255, 255, 255)
# Tracker colours (BGR), distinct on dark and light frames; cycled past ten trackers.
COLORS = ((0, 0, 255), (0, 200, 0), (255, 128, 0), (0, 215, 255), (255, 0, 255),
          (255, 255, 0), (0, 128, 255), (128, 0, 128), (128, 128, 0), (60, 20, 220))


def color(i: int) -> tuple[int, int, int]:
    """The colour of the ``i``-th tracker of a report."""
    return COLORS[i % len(COLORS)]


def hex_color(bgr: Sequence[int]) -> str:
    """An OpenCV BGR colour as an HTML ``#rrggbb``."""
    return f"#{bgr[2]:02x}{bgr[1]:02x}{bgr[0]:02x}"


def draw_box(image: np.ndarray, box: np.ndarray, bgr: Sequence[int], thickness: int = 2,
             antialiased: bool = True) -> tuple[int, int] | None:
    """Draw a 0-based ``[x, y, w, h]`` box in place; returns its drawn top-left corner.

    A non-finite box is skipped (None); a box far outside the image is drawn clipped, since OpenCV takes
    32-bit coordinates.
    """
    box = np.asarray(box, dtype=float)
    if not np.isfinite(box).all():
        return None
    h, w = image.shape[:2]
    x0, y0, bw, bh = box
    x, y, x1, y1 = (round(min(max(v, -limit), 2 * limit)) for v, limit in
                    ((x0, w), (y0, h), (x0 + bw, w), (y0 + bh, h)))
    cv2.rectangle(image, (x, y), (x1, y1), tuple(int(c) for c in bgr), thickness,
                  cv2.LINE_AA if antialiased else cv2.LINE_8)
    return x, y


def draw_legend(image: np.ndarray, labels: Sequence[tuple[str, Sequence[int]]], scale: float = 0.5) -> None:
    """Coloured labels in the top-left corner, on a dark band so they read on any frame."""
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    line = int(22 * scale / 0.5)
    width = max((cv2.getTextSize(t, font, scale, thick)[0][0] for t, _ in labels), default=0) + 12
    band = image[: line * len(labels) + 6, : width + 4]
    band[:] = (band * 0.35).astype(image.dtype)
    for i, (text, bgr) in enumerate(labels):
        bgr = tuple(int(c) for c in bgr)
        cv2.putText(image, text, (6, line * (i + 1)), font, scale, bgr, thick, cv2.LINE_AA)


def annotate(image: np.ndarray, gt: np.ndarray, boxes: Sequence[tuple[str, np.ndarray, Sequence[int]]],
             legend: bool = True, thickness: int = 2) -> np.ndarray:
    """A copy of ``image`` with the ground truth (white) and each ``(name, box, colour)`` tracker box."""
    out = image.copy()
    draw_box(out, gt, GT_COLOR, thickness)
    for _, box, bgr in boxes:
        draw_box(out, box, bgr, thickness)
    if legend:
        draw_legend(out, [("ground truth", GT_COLOR)] + [(name, bgr) for name, _, bgr in boxes])
    return out
