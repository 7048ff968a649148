"""The tracker's calibrated confidence (PSR), lost flag and scale estimate; eval.calibrate's figures."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from eval import calibrate
from tracker.confidence import peak_to_sidelobe, psr_confidence
from tracker.model import build_siamfc
from tracker.siamfc import SiamFCTracker, TrackerConfig, parabolic_offset
from tracker.zoo import load_zoo_tracker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracking"


def test_psr_of_a_hand_made_map():
    response = np.tile([0.0, 2.0], 17 * 17 // 2 + 1)[: 17 * 17].reshape(17, 17)
    response[6:11, 6:11] = 5.0  # the window around the peak is left out of the sidelobe
    response[8, 8] = 11.0
    sidelobe = np.delete(response.ravel(), [r * 17 + c for r in range(6, 11) for c in range(6, 11)])
    expected = (11.0 - sidelobe.mean()) / sidelobe.std()
    assert peak_to_sidelobe(response) == pytest.approx(expected)
    assert 9.5 < expected < 10.5  # sidelobe ~ mean 1, std 1
    corner = np.zeros((17, 17))
    corner[::2, ::2] = 1.0
    corner[0, 0] = 7.0  # a peak in the corner: its window is clipped, nothing wraps round
    side = corner.copy()
    side[:3, :3] = np.nan
    side = side[np.isfinite(side)]
    assert peak_to_sidelobe(corner) == pytest.approx((7.0 - side.mean()) / side.std())
    assert peak_to_sidelobe(np.full((17, 17), 3.2)) == 0.0  # a flat map: no peak at all
    assert psr_confidence(4.0, center=4.0, slope=2.0) == pytest.approx(0.5)
    assert psr_confidence(6.0, 4.0, 2.0) == pytest.approx(1 / (1 + math.exp(-4.0)))


def test_parabolic_offset_finds_the_vertex():
    log_steps = np.array([-1.0, 0.0, 1.0])
    for vertex in (-0.8, -0.3, 0.0, 0.45):
        peaks = 3.0 - (log_steps - vertex) ** 2
        assert parabolic_offset(peaks, 1) == pytest.approx(vertex)
    assert parabolic_offset(np.array([2.0, 3.0, 2.5]), 1) == pytest.approx(1 / 6)
    assert parabolic_offset(np.array([2.0, 3.0, 2.5]), 2) == pytest.approx(1 / 6 - 1)  # steps from index 2
    assert parabolic_offset(np.array([3.0, 2.0, 1.0]), 0) == 0.0  # a slope down from the end: stay there
    assert parabolic_offset(np.array([1.0, 1.0, 1.0]), 1) == 0.0  # flat: no change
    assert parabolic_offset(np.array([1.0, 0.5, 2.0]), 2) == 0.0  # convex: the higher end itself
    assert parabolic_offset(np.array([1.0, 0.5, 2.0]), 1) == 1.0  # (from the middle: one step up)


def test_scale_bias_correction_cancels_a_measured_bias():
    """A response that prefers a scale 2% smaller than the truth gives no change once that bias is set."""
    tracker = SiamFCTracker(tiny_model(), TrackerConfig(scale_lr=1.0, scale_bias=0.0), kernels="float")
    tracker.scale_factors = tracker.cfg.scale_step ** np.array([-1.0, 0.0, 1.0])
    step = math.log(tracker.cfg.scale_step)
    bias = math.log(0.98)
    peaks = 3.0 - ((np.array([-1.0, 0.0, 1.0]) * step - bias) / step) ** 2
    assert tracker._parabolic_scale(peaks)[1] == pytest.approx(0.98)  # uncorrected: the box shrinks 2%
    tracker.cfg = dataclasses.replace(tracker.cfg, scale_bias=bias)
    assert tracker._parabolic_scale(peaks)[1] == pytest.approx(1.0)
    tracker.cfg = dataclasses.replace(tracker.cfg, scale_lr=0.5)
    peaks = 3.0 - ((np.array([-1.0, 0.0, 1.0]) * step - math.log(1.03) - bias) / step) ** 2
    assert tracker._parabolic_scale(peaks)[1] == pytest.approx(math.sqrt(1.03))  # damped, bias removed


def test_flat_frames_apply_only_the_bias():
    """On a uniform video every scale scores alike: the box changes by exp(-lr * scale_bias) per frame."""
    cfg = TrackerConfig(scale_lr=0.5, scale_bias=0.01, scale_gate=False)
    tracker = SiamFCTracker(tiny_model(), cfg, kernels="float")
    frame = np.full((120, 160, 3), 90, np.uint8)
    tracker.init(frame, [60, 40, 30, 20])
    for _ in range(4):
        box = tracker.update(frame)
    assert box[2] == pytest.approx(30 * math.exp(-4 * 0.5 * 0.01), rel=1e-6)
    # gated (the default): a change counts as much as the confidence, which is low on a flat map
    tracker.cfg = dataclasses.replace(cfg, scale_gate=True)
    tracker.init(frame, [60, 40, 30, 20])
    box = tracker.update(frame)
    assert tracker.psr == 0.0 and tracker.lost
    assert box[2] == pytest.approx(30 * math.exp(-0.5 * 0.01 * tracker.confidence), rel=1e-6)
    assert abs(box[2] - 30) < 0.1 * abs(30 * math.exp(-0.5 * 0.01) - 30)


@pytest.fixture(scope="module")
def zoo_tracker():
    if not (Path(__file__).resolve().parents[1] / "models" / "resnet_bmin.safetensors").is_file():
        pytest.skip("no shipped zoo model models/resnet_bmin.safetensors")
    return load_zoo_tracker("min")


def test_black_and_blank_frames_give_low_confidence_and_lost(zoo_tracker):
    black = np.zeros((240, 320, 3), np.uint8)
    zoo_tracker.init(black, [140, 100, 40, 40])
    for _ in range(3):
        zoo_tracker.update(black)
        assert zoo_tracker.confidence < 0.1 and zoo_tracker.lost
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frame[100:140, 140:180] = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    zoo_tracker.init(frame, [140, 100, 40, 40])
    zoo_tracker.update(frame)
    assert zoo_tracker.confidence > 0.5 and not zoo_tracker.lost  # the target itself: kept
    zoo_tracker.update(np.full_like(frame, 128))  # the target is gone: a blank frame
    assert zoo_tracker.confidence < 0.1 and zoo_tracker.lost


def test_failures_and_flag_rates():
    ious = np.array([0.5] + [0.0] * 10 + [0.3] + [0.0] * 9 + [0.0] * 12)
    assert calibrate.count_failures(ious) == 2  # 10 zeros, then 21 zeros; never a short run
    assert calibrate.count_failures(np.zeros(9)) == 0
    rates = calibrate.flag_rates(np.array([1, 1, 0, 1, 0], bool), np.array([1, 1, 1, 0, 0], bool))
    assert rates == {"detection": pytest.approx(2 / 3), "false_alarm": 0.5, "positives": 3, "negatives": 2}
    x = np.linspace(0, 10, 400)
    y = np.random.default_rng(0).random(400) < 1 / (1 + np.exp(-2.0 * (x - 4.0)))
    center, slope = calibrate.fit_logistic(x, y)
    assert abs(center - 4.0) < 0.5 and 1.0 < slope < 3.5


@pytest.mark.skipif(not (DATA / "otb" / "Couple").is_dir(), reason="shared tracking data absent")
def test_calibrate_cli_reports_the_figures(tmp_path, zoo_tracker):
    split = tmp_path / "split.txt"
    split.write_text("otb/Couple\n")
    out, frames = tmp_path / "report.json", tmp_path / "frames.npz"
    ckpt = Path(__file__).resolve().parents[1] / "models" / "resnet_bmin.safetensors"
    assert calibrate.main(["--tracker", str(ckpt), "--data", str(DATA), "--split", str(split), "--max-frames",
                           "8", "--threads", "1", "--out", str(out), "--frames-out", str(frames)]) == 0
    report = json.loads(out.read_text())
    entry = report["trackers"]["resnet_bmin"]
    assert entry["frames"] == 7 and entry["failures"] == 0 and 0.8 < entry["area_ratio_median"] < 1.25
    assert entry["lost"]["negatives"] + entry["lost"]["positives"] == 7
    assert report["configs"]["resnet_bmin"]["scale_estimate"] == "parabolic"
    assert np.load(frames)["resnet_bmin/Couple/confidence"].shape == (7,)
    split.write_text("otb/Couple\notb/Crossing\n")  # --held-out: every 8th by name, at least one
    assert calibrate.main(["--tracker", str(ckpt), "--data", str(DATA), "--split", str(split), "--held-out",
                           "--max-frames", "3", "--threads", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["sequences"] == ["Couple"]


def tiny_model():
    torch.manual_seed(0)
    return build_siamfc("fp", "resnet", 0.25)


class FlaggingTracker:
    """Stands still; confidence falls by 0.25 per update, lost below 0.5."""

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        self.box, self.confidence, self.lost = np.asarray(box, dtype=float), 1.0, False

    def update(self, frame: np.ndarray) -> np.ndarray:
        self.confidence -= 0.25
        self.lost = self.confidence < 0.5
        return self.box


def test_benchmark_results_gain_confidence_and_lost_columns(tmp_path):
    import cv2

    from eval.benchmark import _write_results, track_sequence
    from tracker.sequences import Sequence

    paths = []
    for k in range(5):
        paths.append(tmp_path / f"{k}.png")
        cv2.imwrite(str(paths[-1]), np.full((40, 60, 3), 50 * k, np.uint8))
    boxes = np.array([[np.nan] * 4] + [[10.0, 10.0, 8.0, 6.0]] * 4)
    run = track_sequence(FlaggingTracker(), Sequence("s", paths, boxes, "otb"))
    _write_results(tmp_path / "results" / "t", "s", run["boxes"], run["times"], run["flags"])
    rows = np.loadtxt(tmp_path / "results" / "t" / "confidence" / "s_confidence.txt", delimiter=",")
    assert np.isnan(rows[0, 0]) and rows[0, 1] == 0
    assert rows[1:].tolist() == [[1.0, 0.0], [0.75, 0.0], [0.5, 0.0], [0.25, 1.0]]


def test_sidecar_tracking_settings_override_the_defaults(tmp_path):
    from backbones.checkpoint import CheckpointError
    from tracker.siamfc import calibrated_config

    assert calibrated_config({}) == TrackerConfig()
    cfg = calibrated_config({"tracking": {"scale_bias": -0.005}})
    assert cfg.scale_bias == -0.005 and cfg.psr_center == TrackerConfig().psr_center
    with pytest.raises(CheckpointError, match="unknown tracking setting.*scale_bais"):
        calibrated_config({"tracking": {"scale_bais": 0.1}}, tmp_path / "m.safetensors")
