"""The tracker's confidence: the peak-to-sidelobe ratio (PSR) of a response map, mapped to [0, 1].

The raw peak logit says little about a lost target (it stays high on background and on a black frame);
the PSR, (peak - mean of the sidelobe) / std of the sidelobe, measures how much the peak stands out.
``confidence = sigmoid(slope * (psr - center))``, with ``center`` and ``slope`` fitted on train sequences
held out from training (``python -m eval.calibrate``); a flat map (no structure at all) has PSR 0.
"""
from __future__ import annotations

import numpy as np

SIDELOBE_EXCLUDE = 2  # cells either side of the peak left out of the sidelobe (16 px at stride 8)
FLAT = 1e-6  # a sidelobe std below this (logits) is a flat map: PSR 0


def peak_to_sidelobe(response: np.ndarray, exclude: int = SIDELOBE_EXCLUDE) -> float:
    """PSR of a 2-D map: the sidelobe is every cell outside the (2 exclude + 1)^2 window at the peak."""
    response = np.asarray(response, dtype=np.float64)
    row, col = np.unravel_index(int(np.argmax(response)), response.shape)
    keep = np.ones(response.shape, dtype=bool)
    keep[max(0, row - exclude):row + exclude + 1, max(0, col - exclude):col + exclude + 1] = False
    sidelobe = response[keep]
    if sidelobe.size < 2 or not np.isfinite(response).all():
        return 0.0
    std = float(sidelobe.std())
    return 0.0 if std < FLAT else float((response[row, col] - sidelobe.mean()) / std)


def psr_confidence(psr: float | np.ndarray, center: float, slope: float) -> float | np.ndarray:
    """The calibrated confidence: a logistic function of the PSR (``slope`` > 0: a higher PSR, more sure)."""
    return 1.0 / (1.0 + np.exp(-slope * (np.asarray(psr, dtype=np.float64) - center)))
