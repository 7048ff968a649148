"""The built-in sample: determinism, what the clip holds, how hard it is, its cache, the benchmark on it."""
from __future__ import annotations

import json
import os
import threading

import cv2
import numpy as np
import pytest
import torch

from backbones.cli import run_cli
from eval import benchmark
from eval.metrics import sequence_metrics
from tracker import sample, synth
from tracker.shipped import shipped_dir
from tracker.zoo import load_zoo_tracker

PREFIX = 130  # frames the model test tracks: past the pole (crossing in 50-90) and the distractor (100-130)
SHORT = 8  # frames of the samples the cache tests build


@pytest.fixture(scope="session")
def full():
    """The default sample (seed 0, 300 frames), generated once per session."""
    return synth.generate(0)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache: XDG_CACHE_HOME in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "b2track"


def static_auc(boxes: np.ndarray) -> float:
    """The static tracker's AUC: the first box on every frame."""
    return sequence_metrics(np.repeat(boxes[:1], len(boxes), axis=0), boxes)["auc"]


# ---------------------------------------------------------------- the generator


def test_same_seed_gives_identical_frames_another_seed_another_sequence():
    frames, boxes = sample.make_sample(0, 12)
    again, again_boxes = sample.make_sample(0, 12)
    assert frames.shape == (12, 360, 640, 3) and frames.dtype == np.uint8 and boxes.shape == (12, 4)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(boxes, again_boxes)
    other, other_boxes = sample.make_sample(1, 12)
    assert np.abs(other.astype(int) - frames).mean() > 10  # a different scene, not noise on the same one
    assert np.abs(other_boxes - boxes).max() > 5
    longer, longer_boxes = sample.make_sample(0, 20)  # a shorter sample is a prefix of a longer one
    np.testing.assert_array_equal(longer[:12], frames)
    np.testing.assert_array_equal(longer_boxes[:12], boxes)


def test_the_clip_has_every_promised_difficulty(full):
    plan = synth.make_plan(0)
    boxes = full.boxes
    assert full.frames.shape == (300, 360, 640, 3)
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.ptp(centre[:, 0]) > 200 and np.ptp(centre[:, 1]) > 80  # it moves across the frame
    assert np.ptp(plan.target[:, 3]) > 1.0  # it turns (radians)
    assert plan.target[:, 2].max() / plan.target[:, 2].min() > 1.5  # it changes scale
    partly = (full.occlusion >= 0.1) & (full.occlusion < 0.9)
    assert partly.sum() >= 10 and full.occlusion.max() < 0.9  # partly hidden for 10+ frames, never fully
    assert np.ptp(plan.camera[:, 0]) > 100  # the background pans
    d = full.distractor  # same size as the target (the same scale; rotation changes its box a little)
    np.testing.assert_array_equal(plan.distractor[:, 2], plan.target[:, 2])
    gap_x = np.abs(centre[:, 0] - (d[:, 0] + d[:, 2] / 2)) - (boxes[:, 2] + d[:, 2]) / 2
    gap_y = np.abs(centre[:, 1] - (d[:, 1] + d[:, 3] / 2)) - (boxes[:, 3] + d[:, 3]) / 2
    gap = np.hypot(np.maximum(gap_x, 0), np.maximum(gap_y, 0))
    assert (gap < boxes[:, 2]).sum() >= 20  # passes within one target width, for a while
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, :2] + boxes[:, 2:] <= [640, 360])


@pytest.mark.parametrize("frame", [0, 70, 199])
def test_ground_truth_is_the_rendered_targets_box(full, frame):
    plan = synth.make_plan(0)
    scene = synth.make_scene(0, plan)
    canvas = np.zeros((360, 640, 3), np.float32)
    alpha = synth._paste(canvas, scene.target, plan.target[frame])
    rows, cols = np.nonzero(alpha > 0.5)
    x, y, w, h = full.boxes[frame]
    assert abs(cols.min() - x) <= 1 and abs(cols.max() - (x + w - 1)) <= 1
    assert abs(rows.min() - y) <= 1 and abs(rows.max() - (y + h - 1)) <= 1


def test_static_tracker_scores_at_most_0_15(full):
    assert static_auc(full.boxes) <= 0.15
    assert static_auc(full.boxes[:PREFIX]) <= 0.15


@pytest.fixture
def one_thread():
    """One torch thread: steadier (and on a busy machine much faster) than oversubscribed cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shipped_budget_0_3_model_beats_static_by_0_2(full, one_thread):
    tracker = load_zoo_tracker(0.3, models_dir=shipped_dir("models"))
    frames, truth = full.frames[:PREFIX], full.boxes[:PREFIX]
    tracker.init(frames[0], truth[0])
    boxes = np.stack([truth[0], *(tracker.update(f) for f in frames[1:])])
    auc = sequence_metrics(boxes, truth)["auc"]
    assert auc >= static_auc(truth) + 0.2, (auc, static_auc(truth))


# ---------------------------------------------------------------- the cache


def test_cache_is_built_in_otb_layout_then_reused(cache, capfd):
    folder = sample.ensure_sample(0, SHORT)
    assert folder == cache / "sample_s0_n8" and sample.is_valid(folder, 0, SHORT)
    assert sorted(p.name for p in (folder / "img").iterdir()) == [f"{i:04d}.jpg" for i in range(1, SHORT + 1)]
    seq = sample.load_sample(0, SHORT)
    frames, boxes = sample.make_sample(0, SHORT)
    assert seq.name == "sample_s0_n8" and seq.layout == "otb" and len(seq) == SHORT
    np.testing.assert_allclose(seq.boxes, boxes, atol=1e-3)  # 1-based on disk, 0-based when read
    decoded = cv2.imread(str(seq.frames[3])).astype(int)
    assert np.abs(decoded - frames[3]).mean() < 6  # JPEG of the same frame
    stamp = (folder / sample.MANIFEST).stat().st_mtime_ns
    assert sample.ensure_sample(0, SHORT) == folder
    assert (folder / sample.MANIFEST).stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert capfd.readouterr() == ("", "")


def _stale(folder):
    meta = json.loads((folder / sample.MANIFEST).read_text())
    meta["generator"] = synth.GENERATOR_VERSION - 1
    (folder / sample.MANIFEST).write_text(json.dumps(meta))


DAMAGE = {
    "stale generator version": _stale,
    "truncated frame": lambda f: os.truncate(f / "img" / "0003.jpg", 99),
    "missing frame": lambda f: (f / "img" / "0005.jpg").unlink(),
    "extra frame": lambda f: (f / "img" / "0009.jpg").write_bytes((f / "img" / "0001.jpg").read_bytes()),
    "edited ground truth": lambda f: (f / "groundtruth_rect.txt").write_text("1,1,10,10\n" * SHORT),
    "garbage manifest": lambda f: (f / sample.MANIFEST).write_text("{not json"),
    "no manifest": lambda f: (f / sample.MANIFEST).unlink(),
    "no image folder": lambda f: [p.unlink() for p in (f / "img").iterdir()] and (f / "img").rmdir(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_stale_or_corrupt_cache_is_rebuilt_quietly(damage, cache, capfd):
    folder = sample.ensure_sample(0, SHORT)
    good = {p.name: p.read_bytes() for p in (folder / "img").iterdir()}
    DAMAGE[damage](folder)
    assert not sample.is_valid(folder, 0, SHORT)
    assert sample.ensure_sample(0, SHORT) == folder
    assert sample.is_valid(folder, 0, SHORT)
    assert {p.name: p.read_bytes() for p in (folder / "img").iterdir()} == good  # the same frames again
    assert len(sample.load_sample(0, SHORT)) == SHORT
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert capfd.readouterr() == ("", "")  # nothing a user would see


def test_concurrent_builds_without_the_lock_still_leave_one_valid_copy(cache, monkeypatch):
    """Even where flock is missing (Windows), the rename-into-place keeps racing builders safe."""
    import contextlib

    monkeypatch.setattr(sample, "_lock", lambda path: contextlib.nullcontext())
    results, errors = [], []

    def build():
        try:
            results.append(sample.ensure_sample(0, SHORT))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and sample.is_valid(results[0], 0, SHORT)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_cache_falls_back_to_a_temporary_copy(tmp_path, monkeypatch, capfd):
    blocker = tmp_path / "xdg"
    blocker.mkdir()
    (blocker / "b2track").write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    folder = sample.ensure_sample(0, SHORT)
    assert sample.is_valid(folder, 0, SHORT) and blocker not in folder.parents
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: cannot write the sample cache")


def test_cli_writes_a_data_root_the_benchmark_reads(tmp_path, cache, capsys):
    root = tmp_path / "data"
    assert run_cli(sample.main, ["--out", str(root), "--frames", str(SHORT), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(root / "sample_s3_n8")
    report = tmp_path / "report"
    assert run_cli(benchmark.main, ["--tracker", "static", "--data", str(root), "--out", str(report)]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert summary["sequences"] == ["sample_s3_n8"]
    (root / "sample_s3_n8" / sample.MANIFEST).unlink()
    assert run_cli(sample.main, ["--out", str(root), "--frames", str(SHORT), "--seed", "3"]) == 2
    assert "is not a b2track sample" in capsys.readouterr().err


def test_benchmark_sample_needs_no_data(tmp_path, cache, full, capsys):
    report = tmp_path / "report"
    assert run_cli(benchmark.main, ["--sample", "--tracker", "static", "--out", str(report)]) == 0
    summary = json.loads((report / "summary.json").read_text())
    static = summary["trackers"]["static"]
    assert summary["sequences"] == ["sample_s0"] and static["mean"]["frames"] == 300
    assert static["mean"]["auc"] == pytest.approx(static_auc(full.boxes), abs=0.01)
    assert (report / "results" / "static" / "sample_s0.txt").is_file()
    capsys.readouterr()
    assert run_cli(benchmark.main, ["--tracker", "static", "--out", str(report)]) == 2
    assert "--sample" in capsys.readouterr().err
