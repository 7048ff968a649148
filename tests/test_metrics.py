"""eval.metrics against the got10k toolkit's own ExperimentOTB / ExperimentGOT10k code on a real sequence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from got10k.experiments.got10k import ExperimentGOT10k
from got10k.experiments.otb import ExperimentOTB
from got10k.utils.metrics import center_error, rect_iou

from eval.metrics import mean_metrics, sequence_metrics, valid_boxes

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COUPLE = SHARED / "data" / "tracking" / "otb" / "Couple" / "groundtruth_rect.txt"
needs_data = pytest.mark.skipif(not COUPLE.is_file(), reason=f"real data not found at {COUPLE}")


def load_otb_gt(path: Path) -> np.ndarray:
    """Read an OTB annotation (comma, tab or space delimited, 1-based) as 0-based [x, y, w, h]."""
    rows = [line.replace(",", " ").split() for line in path.read_text().splitlines() if line.strip()]
    gt = np.array(rows, dtype=float)
    gt[:, :2] -= 1
    return gt


def toolkit_otb() -> ExperimentOTB:
    """An ExperimentOTB without its dataset (whose constructor would download OTB)."""
    exp = object.__new__(ExperimentOTB)
    exp.nbins_iou, exp.nbins_ce = 21, 51  # as ExperimentOTB.__init__ sets them
    return exp


def perturbed(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    """Ground truth with seeded shifts and scalings: a plausible, imperfect tracker output."""
    rng = np.random.default_rng(seed)
    pred = gt.copy()
    pred[:, :2] += rng.normal(0, 0.3, (len(gt), 2)) * gt[:, 2:]
    pred[:, 2:] *= np.exp(rng.normal(0, 0.2, (len(gt), 2)))
    return pred


@pytest.fixture(scope="module")
def couple() -> np.ndarray:
    if not COUPLE.is_file():
        pytest.skip(f"real data not found at {COUPLE}")
    return load_otb_gt(COUPLE)


@needs_data
def test_matches_toolkit_otb_and_got10k(couple: np.ndarray) -> None:
    gt = couple
    pred = perturbed(gt)
    pred[0] = gt[0]  # the first frame is set to the ground truth, as ExperimentOTB.report does
    ious = rect_iou(pred.copy(), gt.copy())
    errors = center_error(pred, gt)
    succ, prec = toolkit_otb()._calc_curves(ious, errors)
    ao, sr, _, _ = object.__new__(ExperimentGOT10k)._evaluate(ious, np.array([]))

    m = sequence_metrics(pred, gt)
    assert m["frames"] == len(gt) == 140
    assert m["success_curve"] == succ.tolist()
    assert m["precision_curve"] == prec.tolist()
    assert m["auc"] == np.mean(succ)  # ExperimentOTB's success_score
    assert m["precision"] == prec[20]  # ExperimentOTB's precision_score
    assert m["ao"] == ao and m["sr50"] == sr
    assert m["sr75"] == np.mean(ious > 0.75)
    assert 0.05 < m["auc"] < 0.9  # the perturbation is neither trivial nor total


@needs_data
def test_identical_boxes_give_what_the_toolkit_gives(couple: np.ndarray) -> None:
    succ, prec = toolkit_otb()._calc_curves(rect_iou(couple.copy(), couple.copy()), center_error(couple, couple))
    m = sequence_metrics(couple, couple)
    # IoU = 1 is never strictly above the last threshold 1.0, so the best AUC is 20 / 21.
    assert m["auc"] == np.mean(succ) == pytest.approx(20 / 21)
    assert m["precision"] == prec[20] == 1.0
    assert m["ao"] == pytest.approx(1.0) and m["sr50"] == 1.0 and m["sr75"] == 1.0


@needs_data
def test_nan_ground_truth_rows_are_excluded(couple: np.ndarray) -> None:
    pred = perturbed(couple, seed=1)
    gt = couple.copy()
    gt[10:20] = np.nan
    gt[30, 2] = 0.0  # zero width: not a scorable box either
    keep = valid_boxes(gt)
    assert keep.sum() == len(gt) - 11
    m = sequence_metrics(pred, gt)
    assert m == sequence_metrics(pred[keep], couple[keep])
    assert m["frames"] == keep.sum()
    explicit = np.ones(len(gt), bool)
    explicit[:50] = False
    assert sequence_metrics(pred, couple, explicit) == sequence_metrics(pred[50:], couple[50:])


def test_lost_predictions_score_zero_not_nan() -> None:
    gt = np.array([[10.0, 10, 20, 20], [12, 12, 20, 20]])
    pred = np.array([[10.0, 10, 20, 20], [np.nan] * 4])
    m = sequence_metrics(pred, gt)
    assert m["ao"] == pytest.approx(0.5) and m["precision"] == 0.5 and np.isfinite(m["auc"])


def test_mean_metrics_averages_sequences() -> None:
    gt = np.array([[10.0, 10, 20, 20]] * 4)
    a = sequence_metrics(gt, gt)
    b = sequence_metrics(gt + [30, 0, 0, 0], gt)
    mean = mean_metrics([a, b])
    assert mean["auc"] == pytest.approx((a["auc"] + b["auc"]) / 2)
    assert mean["success_curve"] == pytest.approx(list((np.array(a["success_curve"]) + b["success_curve"]) / 2))
    assert mean["frames"] == 8 and mean["sequences"] == 2
    assert mean_metrics([])["sequences"] == 0
