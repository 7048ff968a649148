"""Tracking metrics through the got10k toolkit: OTB success / precision curves and GOT-10k AO / SR.

IoU and centre error come from ``got10k.utils.metrics``; the curves mirror ``ExperimentOTB._calc_curves``
(21 IoU thresholds, strict ``>``; 51 centre-error thresholds, ``<=``) and AO / SR mirror
``ExperimentGOT10k._evaluate``. Frames whose ground truth is invalid are excluded (docs/design.md section 6).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from got10k.utils.metrics import center_error, rect_iou

NBINS_IOU = 21
NBINS_CE = 51
IOU_THRESHOLDS = np.linspace(0, 1, NBINS_IOU)
CE_THRESHOLDS = np.arange(0, NBINS_CE)
PRECISION_PX = 20
SCALAR_KEYS = ("auc", "precision", "ao", "sr50", "sr75")
CURVE_KEYS = ("success_curve", "precision_curve")


def valid_boxes(gt: np.ndarray) -> np.ndarray:
    """Bool mask of ground-truth rows that can be scored: all four values finite and w > 0, h > 0."""
    gt = np.asarray(gt, dtype=float).reshape(-1, 4)
    finite = np.isfinite(gt).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (gt[:, 2] > 0) & (gt[:, 3] > 0)


def curves(ious: np.ndarray, center_errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Success and precision curves exactly as ``ExperimentOTB._calc_curves`` computes them."""
    ious = np.asarray(ious, float)[:, np.newaxis]
    center_errors = np.asarray(center_errors, float)[:, np.newaxis]
    succ_curve = np.mean(np.greater(ious, IOU_THRESHOLDS[np.newaxis, :]), axis=0)
    prec_curve = np.mean(np.less_equal(center_errors, CE_THRESHOLDS[np.newaxis, :]), axis=0)
    return succ_curve, prec_curve


def sequence_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> dict:
    """Metrics of one sequence's predicted boxes against its ground truth ([x, y, w, h], 0-based).

    Only frames in ``valid`` (default: ``valid_boxes(gt)``) count; a non-finite prediction scores
    IoU 0 and an infinite centre error (the toolkit would let its NaN poison AO).
    """
    pred = np.asarray(pred, dtype=float).reshape(-1, 4)
    gt = np.asarray(gt, dtype=float).reshape(-1, 4)
    if pred.shape != gt.shape:
        raise ValueError(f"pred has {len(pred)} boxes but gt has {len(gt)}")
    mask = valid_boxes(gt) if valid is None else np.asarray(valid, dtype=bool).reshape(-1)
    if mask.shape != (len(gt),):
        raise ValueError(f"valid has {mask.size} entries for {len(gt)} frames")
    p, g = pred[mask].copy(), gt[mask].copy()
    ious = rect_iou(p, g) if len(g) else np.zeros(0)
    errors = center_error(p, g) if len(g) else np.zeros(0)
    bad = ~np.isfinite(p).all(axis=1)
    ious = np.where(bad | ~np.isfinite(ious), 0.0, ious)
    errors = np.where(bad | ~np.isfinite(errors), np.inf, errors)
    if len(g) == 0:
        succ, prec = np.zeros(NBINS_IOU), np.zeros(NBINS_CE)
        ao = sr50 = sr75 = 0.0
    else:
        succ, prec = curves(ious, errors)
        ao, sr50, sr75 = float(np.mean(ious)), float(np.mean(ious > 0.5)), float(np.mean(ious > 0.75))
    return {
        "auc": float(np.mean(succ)),
        "precision": float(prec[PRECISION_PX]),
        "ao": ao,
        "sr50": sr50,
        "sr75": sr75,
        "success_curve": succ.tolist(),
        "precision_curve": prec.tolist(),
        "frames": len(g),
    }


def mean_metrics(per_sequence: Sequence[dict]) -> dict:
    """Mean over sequences of the scalar metrics and the curves (the OTB report averages per sequence)."""
    if not per_sequence:
        return {
            **{k: 0.0 for k in SCALAR_KEYS},
            "success_curve": [0.0] * NBINS_IOU,
            "precision_curve": [0.0] * NBINS_CE,
            "frames": 0,
            "sequences": 0,
        }
    out: dict = {k: float(np.mean([m[k] for m in per_sequence])) for k in SCALAR_KEYS}
    for k in CURVE_KEYS:
        out[k] = np.mean([m[k] for m in per_sequence], axis=0).tolist()
    out["frames"] = int(sum(m.get("frames", 0) for m in per_sequence))
    out["sequences"] = len(per_sequence)
    return out


def pooled_ao(runs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]]) -> float:
    """AO the way the got10k toolkit's ``ExperimentGOT10k.report`` computes it: over the frames of all
    sequences pooled, each sequence's first (init) frame dropped, boxes clipped to the image.

    ``runs`` holds one ``(pred, gt, valid, (width, height))`` per sequence, from its init frame on; only
    ``valid`` frames count (the toolkit's ``cover > 0``) and a non-finite prediction scores IoU 0.
    """
    ious = []
    for pred, gt, valid, size in runs:
        keep = np.asarray(valid, dtype=bool).reshape(-1).copy()
        keep[:1] = False
        if keep.any():
            p = np.asarray(pred, dtype=float).reshape(-1, 4)[keep].copy()
            g = np.asarray(gt, dtype=float).reshape(-1, 4)[keep].copy()
            bad = ~np.isfinite(p).all(axis=1)
            p[bad] = 0.0
            iou = rect_iou(p, g, bound=np.asarray(size, dtype=float))
            ious.append(np.where(bad | ~np.isfinite(iou), 0.0, iou))
    return float(np.mean(np.concatenate(ious))) if ious else 0.0
