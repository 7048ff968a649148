"""The got10k toolkit's own ExperimentGOT10k runs b2track through tracker.adapters.GotTracker on a local
GOT-10k-layout folder built from shared sequences, and its AO equals eval.benchmark's got10k-style AO."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TRACKING = REPO.parent / "shared" / "data" / "tracking"
CHECKPOINT = REPO / "models" / "resnet_b0.3.safetensors"
SOURCES = ("vot/car", "otb/Crossing", "vot/bag")
FRAMES = 6
ABSENT = (1, 4)  # (sequence, frame) flagged absent / cover 0: neither side may score it
pytestmark = pytest.mark.skipif(not all((TRACKING / s).is_dir() for s in SOURCES) or not CHECKPOINT.is_file(),
                                reason="shared tracking data or the shipped budget-0.3 model is absent")


def build_got10k(root: Path) -> list[str]:
    """``root/val/`` in GOT-10k's layout: list.txt, and per sequence 8-digit frames (symlinks), 0-based
    groundtruth.txt, absence / cover / cut_by_image labels and meta_info.ini with the resolution."""
    from tracker.sequences import load_sequence

    names = []
    for k, source in enumerate(SOURCES):
        seq = load_sequence(source, TRACKING)[0]
        name = f"GOT-10k_Val_{k + 1:06d}"
        folder = root / "val" / name
        folder.mkdir(parents=True)
        for i, frame in enumerate(seq.frames[:FRAMES], 1):
            os.symlink(frame, folder / f"{i:08d}.jpg")
        np.savetxt(folder / "groundtruth.txt", seq.boxes[:FRAMES], fmt="%.4f", delimiter=",")
        absent = np.zeros(FRAMES, int)
        if k == ABSENT[0]:
            absent[ABSENT[1]] = 1
        np.savetxt(folder / "absence.label", absent, fmt="%d")
        np.savetxt(folder / "cover.label", np.where(absent, 0, 8), fmt="%d")
        np.savetxt(folder / "cut_by_image.label", np.zeros(FRAMES, int), fmt="%d")
        with Image.open(seq.frames[0]) as image:
            width, height = image.size
        meta = f"[METAINFO]\nobject_class: thing\nresolution: ({width}, {height})\n"
        (folder / "meta_info.ini").write_text(meta)
        names.append(name)
    (root / "val" / "list.txt").write_text("\n".join(names) + "\n")
    return names


def test_experiment_got10k_ao_equals_the_benchmark_got10k_way(tmp_path: Path) -> None:
    import torch
    from got10k.experiments import ExperimentGOT10k

    from eval.benchmark import run_benchmark
    from tracker.adapters import GotTracker
    from tracker.sequences import load_sequences
    from tracker.siamfc import load_tracker

    torch.set_num_threads(1)
    build_got10k(tmp_path / "got10k")
    tracker = load_tracker(CHECKPOINT)
    experiment = ExperimentGOT10k(str(tmp_path / "got10k"), subset="val",
                                  result_dir=str(tmp_path / "results"), report_dir=str(tmp_path / "reports"))
    with contextlib.redirect_stdout(io.StringIO()):  # the toolkit prints every sequence and repetition
        experiment.run(GotTracker(tracker, experiment=experiment, name="b2track"))
        performance = experiment.report(["b2track"])
    toolkit_ao = performance["b2track"]["overall"]["ao"]

    sequences = load_sequences(tmp_path / "got10k")
    assert sum(int((~s.valid).sum()) for s in sequences) == 1  # the one absent frame is not scored
    summary = run_benchmark({"b2track": tracker}, sequences, tmp_path / "report")
    ours = summary["trackers"]["b2track"]["mean"]
    assert abs(ours["ao_got10k"] - toolkit_ao) < 1e-3, (ours["ao_got10k"], toolkit_ao)
    assert 0.3 < toolkit_ao < 1.0  # a working tracker, not a degenerate match of zeros
    assert ours["ao"] != pytest.approx(ours["ao_got10k"], abs=1e-6)  # the per-sequence mean is another figure


def test_got_tracker_needs_an_explicit_or_derived_convention(tmp_path: Path) -> None:
    from got10k.experiments import ExperimentGOT10k, ExperimentOTB, ExperimentUAV123, ExperimentVOT

    from tracker.adapters import GotTracker, experiment_convention
    from tracker.siamfc import load_tracker

    tracker = load_tracker(CHECKPOINT)
    with pytest.raises(ValueError, match="needs convention="):
        GotTracker(tracker)
    with pytest.raises(ValueError, match="unknown box convention 'vot'"):
        GotTracker(tracker, convention="vot")
    assert GotTracker(tracker, convention="otb").offset.tolist() == [1, 1, 0, 0]
    assert GotTracker(tracker, convention="got10k").offset.tolist() == [0, 0, 0, 0]
    # Derived from the experiment (constructed without data: only its class matters).
    assert experiment_convention(object.__new__(ExperimentGOT10k)) == "got10k"
    assert experiment_convention(object.__new__(ExperimentOTB)) == "otb"
    assert experiment_convention(object.__new__(ExperimentUAV123)) == "otb"
    with pytest.raises(ValueError, match="ExperimentVOT"):
        experiment_convention(object.__new__(ExperimentVOT))
    with pytest.raises(ValueError, match="contradicts"):
        GotTracker(tracker, convention="otb", experiment=object.__new__(ExperimentGOT10k))
