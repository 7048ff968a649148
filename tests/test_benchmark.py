"""eval.benchmark on real sequences: report layout, 1-based results round trip, oracle score, one-line
errors, interruptions."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backbones.cli import run_cli
from eval.benchmark import main, run_benchmark
from eval.metrics import mean_metrics, sequence_metrics
from eval.static import StaticTracker

REPO = Path(__file__).resolve().parents[1]
TRACKING = REPO.parent / "shared" / "data" / "tracking"
pytestmark = pytest.mark.skipif(not (TRACKING / "otb" / "Crossing").is_dir(),
                                reason=f"real tracking data not found under {TRACKING}")


class OracleTracker:
    """Returns the ground truth of the sequences it is run on, in order: the best any tracker can score."""

    def __init__(self, sequences: list) -> None:
        self.queue = list(sequences)
        self.boxes, self.i = np.zeros((0, 4)), 0

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        seq = self.queue.pop(0)
        self.boxes, self.i = seq.boxes, int(np.argmax(seq.valid))
        assert frame.ndim == 3 and frame.shape[2] == 3  # OpenCV BGR
        np.testing.assert_array_equal(box, self.boxes[self.i])

    def update(self, frame: np.ndarray) -> np.ndarray:
        self.i += 1
        return self.boxes[self.i]


def load(entries: list[str]) -> list:
    from tracker.sequences import load_sequence

    return [s for e in entries for s in load_sequence(e, TRACKING)]


def split_file(tmp_path: Path, entries: list[str], name: str = "split.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(entries) + "\n")
    return path


def test_static_report_layout_and_one_based_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    split = split_file(tmp_path, ["otb/Crossing", "vot/bag"])
    argv = ["--tracker", "static", "--data", str(TRACKING), "--split", str(split), "--out", str(out),
            "--max-frames", "30"]
    assert main(argv) == 0
    assert "static" in capsys.readouterr().out  # the printed table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "split.txt"]  # no temporary left
    for name in ("summary.json", "table.txt", "success_plots.png", "precision_plots.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "success_plots.png").read_bytes()[:4] == b"\x89PNG"

    summary = json.loads((out / "summary.json").read_text())
    entry = summary["trackers"]["static"]
    assert entry["ops"] == 0 and entry["budget"] is None and entry["fps"] > 0
    assert sorted(entry["sequences"]) == ["Crossing", "bag"] and summary["max_frames"] == 30
    assert entry["mean"]["frames"] == 60 and len(entry["mean"]["success_curve"]) == 21

    seqs = {s.name: s for s in load(["otb/Crossing", "vot/bag"])}
    for name, seq in seqs.items():
        rows = np.loadtxt(out / "results" / "static" / f"{name}.txt", delimiter=",")
        times = np.loadtxt(out / "results" / "static" / "times" / f"{name}_time.txt")
        assert rows.shape == (30, 4) and times.shape == (30,) and (times >= 0).all()
        # 1-based on disk: subtracting 1 from x, y gives back the 0-based boxes the tracker returned.
        np.testing.assert_allclose(rows - [1, 1, 0, 0], np.tile(seq.boxes[0], (30, 1)), atol=5e-4)
        expected = sequence_metrics(np.tile(seq.boxes[0], (30, 1)), seq.boxes[:30])
        assert entry["sequences"][name]["auc"] == pytest.approx(expected["auc"])
    # The OTB file's own first row (1-based, tab separated) is what the results file holds for frame 1.
    first = (TRACKING / "otb" / "Crossing" / "groundtruth_rect.txt").read_text().split("\n")[0].split()
    np.testing.assert_allclose(np.loadtxt(out / "results" / "static" / "Crossing.txt", delimiter=",")[0],
                               np.array(first, dtype=float))


def test_oracle_scores_ground_truth_against_itself(tmp_path: Path) -> None:
    seqs = load(["otb/Crossing", "otb/Football1"])  # Football1's last 7 frames are unannotated
    summary = run_benchmark({"oracle": OracleTracker(seqs)}, seqs, tmp_path / "r", max_frames=None)
    entry = summary["trackers"]["oracle"]
    expected = mean_metrics([sequence_metrics(s.boxes, s.boxes) for s in seqs])
    assert entry["mean"]["auc"] == pytest.approx(expected["auc"])
    assert entry["mean"]["auc"] == pytest.approx(20 / 21)  # IoU 1 is never strictly above threshold 1.0
    assert entry["mean"]["precision"] == 1.0 and entry["mean"]["frames"] == 120 + 74
    assert "ops" not in entry and "budget" not in entry
    rows = np.loadtxt(tmp_path / "r" / "results" / "oracle" / "Football1.txt", delimiter=",")
    assert rows.shape == (81, 4) and np.isnan(rows[74:]).all()


def test_init_on_first_valid_frame(tmp_path: Path) -> None:
    from tracker.sequences import Sequence

    crossing = load(["otb/Crossing"])[0]
    boxes = crossing.boxes.copy()
    boxes[:5] = np.nan  # target unannotated at first: start on frame 6
    seq = Sequence("late", crossing.frames[:20], boxes[:20], "otb")
    summary = run_benchmark({"oracle": OracleTracker([seq])}, [seq], tmp_path / "r")
    result = summary["trackers"]["oracle"]["sequences"]["late"]
    assert result["first_frame"] == 5 and result["frames"] == 15
    rows = np.loadtxt(tmp_path / "r" / "results" / "oracle" / "late.txt", delimiter=",")
    assert np.isnan(rows[:5]).all()
    np.testing.assert_allclose(rows[5:] - [1, 1, 0, 0], boxes[5:20], atol=5e-4)


class CountingTracker(StaticTracker):
    """The static baseline that counts its runs and can fail on one sequence (neither is a setting)."""

    inits = 0
    fail_on: int | None = None

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        CountingTracker.inits += 1
        if CountingTracker.inits == CountingTracker.fail_on:
            raise RuntimeError("tracker crashed")
        super().init(frame, box)


def hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def test_failure_keeps_finished_pairs_and_a_rerun_resumes(tmp_path: Path) -> None:
    seqs = load(["otb/Crossing", "vot/bag", "otb/Couple"])
    out = tmp_path / "r"
    CountingTracker.inits, CountingTracker.fail_on = 0, 1
    with pytest.raises(RuntimeError, match="tracker crashed"):
        run_benchmark({"t": CountingTracker()}, seqs, out, max_frames=3)
    assert list(tmp_path.iterdir()) == []  # failed before finishing a pair: nothing is left
    CountingTracker.inits, CountingTracker.fail_on = 0, 2
    with pytest.raises(RuntimeError, match="tracker crashed"):
        run_benchmark({"t": CountingTracker()}, seqs, out, max_frames=3)
    assert (out / "finished" / "t" / "Crossing.json").is_file() and not (out / "summary.json").exists()
    assert not (out / "finished" / "t" / "bag.json").exists() and hidden(tmp_path) == []
    first = (out / "results" / "t" / "Crossing.txt").stat().st_mtime_ns
    CountingTracker.inits, CountingTracker.fail_on = 0, None
    summary = run_benchmark({"t": CountingTracker()}, seqs, out, max_frames=3)
    assert CountingTracker.inits == 2  # bag and Couple only: Crossing was finished
    assert (out / "results" / "t" / "Crossing.txt").stat().st_mtime_ns == first
    assert sorted(summary["trackers"]["t"]["sequences"]) == ["Couple", "Crossing", "bag"]
    again = run_benchmark({"t": CountingTracker()}, seqs, out, max_frames=3)
    assert CountingTracker.inits == 2 and again == summary  # complete: nothing is tracked again
    assert hidden(tmp_path) == []


def test_other_settings_are_refused_naming_the_difference_and_force_starts_over(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r"
    base = ["--tracker", "static", "--data", str(TRACKING), "--split",
            str(split_file(tmp_path, ["otb/Crossing", "vot/bag"])), "--out", str(out)]
    assert run_cli(main, [*base, "--max-frames", "5"]) == 0
    before = (out / "summary.json").read_text()
    for other, says in ((["--max-frames", "6"], "max_frames 5 there, 6 now"),
                        (["--max-frames", "5", "--tracker", "two=static"], "trackers: two not there")):
        capsys.readouterr()
        assert run_cli(main, [*base, *other]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "--force" in err, err
    split2 = split_file(tmp_path, ["otb/Crossing"], "split2.txt")
    assert run_cli(main, [*base[:5], str(split2), *base[6:], "--max-frames", "5"]) == 2
    assert "sequences: bag not given now" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before  # refused runs touch nothing
    assert run_cli(main, [*base, "--max-frames", "6", "--force"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_frames"] == 6 and summary["trackers"]["static"]["mean"]["frames"] == 12
    mean = summary["trackers"]["static"]["mean"]
    for metric in ("auc", "precision", "ao"):  # floats, and their 95% bootstrap intervals as [low, high]
        low, high = mean[f"{metric}_ci95"]
        assert isinstance(mean[metric], float) and low <= mean[metric] <= high
        assert f"{mean[metric]:.3f} [{low:.3f}, {high:.3f}]" in (out / "table.txt").read_text()
    assert len(np.loadtxt(out / "results" / "static" / "bag.txt", delimiter=",")) == 6


def figures(summary: dict) -> dict:
    """The summary without timings (FPS, seconds) and the code version: what must not depend on how the
    pairs were spread."""
    timing = {"fps", "update_seconds"}

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in timing}
        return value

    return strip({k: v for k, v in summary.items() if k != "data"})


def test_workers_2_equals_workers_1_except_timings(tmp_path: Path) -> None:
    bmin = REPO / "models" / "resnet_bmin.safetensors"
    split = split_file(tmp_path, ["otb/Crossing", "vot/bag", "dtb70/Gull1"])
    common = ["--tracker", f"bmin={bmin}", "--tracker", "static", "--data", str(TRACKING), "--split",
              str(split), "--max-frames", "12", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "w1")]) == 0
    assert main([*common, "--out", str(tmp_path / "w2"), "--workers", "2"]) == 0
    one, two = (json.loads((tmp_path / w / "summary.json").read_text()) for w in ("w1", "w2"))
    assert figures(one) == figures(two)
    assert one["trackers"]["bmin"]["mean"]["auc"] != one["trackers"]["static"]["mean"]["auc"]
    for seq in ("Crossing", "bag", "Gull1"):
        assert (tmp_path / "w1" / "results" / "bmin" / f"{seq}.txt").read_bytes() == \
            (tmp_path / "w2" / "results" / "bmin" / f"{seq}.txt").read_bytes()
    assert hidden(tmp_path) == []


def test_torchrun_two_ranks_equal_one_process(tmp_path: Path) -> None:
    import os

    split = split_file(tmp_path, ["otb/Crossing", "vot/bag", "dtb70/Gull1"])
    common = ["--tracker", "static", "--tracker", "b=static", "--data", str(TRACKING), "--split", str(split),
              "--max-frames", "10"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, "-m", "eval.benchmark", *common, "--out", str(tmp_path / "two")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report written to") == 1  # rank 0 merges and prints
    one, two = (json.loads((tmp_path / w / "summary.json").read_text()) for w in ("one", "two"))
    assert figures(one) == figures(two)
    assert hidden(tmp_path / "two") == []


@pytest.mark.parametrize("bad", [
    ["--tracker", "static", "--data", "/nonexistent/tracking"],
    ["--tracker", "kcf", "--data", str(TRACKING)],
    ["--tracker", "/nonexistent/model.safetensors", "--data", str(TRACKING)],
    ["--tracker", "static", "--data", str(TRACKING), "--split", "/nonexistent/split.txt"],
    ["--tracker", "static", "--data", str(TRACKING), "--max-frames", "0"],
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, bad: list[str]) -> None:
    out = tmp_path / "r"
    assert run_cli(main, [*bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()


def test_refuses_to_replace_a_directory_that_is_not_a_report(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    argv = ["--tracker", "static", "--data", str(TRACKING), "--out", str(tmp_path)]
    assert run_cli(main, argv) == 2
    assert "not a report" in capsys.readouterr().err and (tmp_path / "keep.txt").read_text() == "mine"


def test_help_explains() -> None:
    done = subprocess.run([sys.executable, "-m", "eval.benchmark", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "--max-frames" in done.stdout and "safetensors" in done.stdout


def test_tracker_specs(tmp_path: Path) -> None:
    from backbones.cli import UsageError
    from eval.benchmark import parse_spec

    ckpt = tmp_path / "net.safetensors"
    ckpt.write_bytes(b"")
    assert parse_spec("static") == ("static", None)
    assert parse_spec("base=static") == ("base", None)
    assert parse_spec(str(ckpt)) == ("net", str(ckpt))
    assert parse_spec(f"b2={ckpt}") == ("b2", str(ckpt))
    with pytest.raises(UsageError, match="unknown tracker"):
        parse_spec("siamrpn")
    with pytest.raises(UsageError, match="not found"):
        parse_spec(f"b2={tmp_path / 'missing.safetensors'}")


def crossing_variant(name: str, boxes=None, frames=None):
    """The first 10 frames of OTB Crossing, with other boxes or frames."""
    from tracker.sequences import Sequence

    crossing = load(["otb/Crossing"])[0]
    boxes = crossing.boxes[:10] if boxes is None else boxes
    return Sequence(name, frames or crossing.frames[:10], boxes, "otb")


def test_nothing_to_score_is_one_line_and_no_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from backbones.cli import UsageError

    with pytest.raises(UsageError, match="nothing to score"):
        run_benchmark({"static": StaticTracker()}, [crossing_variant("blank", np.full((10, 4), np.nan))],
                      tmp_path / "r")
    with pytest.raises(UsageError, match="no sequences"):
        run_benchmark({"static": StaticTracker()}, [], tmp_path / "r")
    empty = split_file(tmp_path, [])
    assert run_cli(main, ["--tracker", "static", "--data", str(TRACKING), "--split", str(empty),
                          "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_first_box_outside_the_frame_is_one_line(tmp_path: Path) -> None:
    from backbones.cli import UsageError

    boxes = load(["otb/Crossing"])[0].boxes[:10].copy()
    boxes[0] = [5000, 5000, 20, 20]
    with pytest.raises(UsageError, match=r"Crossing.*frame 1 .*lies outside the 360x240 frame"):
        run_benchmark({"static": StaticTracker()}, [crossing_variant("Crossing", boxes)], tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_jpeg_in_a_sequence_is_one_line_naming_it(tmp_path: Path) -> None:
    from backbones.cli import UsageError

    frames = list(load(["otb/Crossing"])[0].frames[:10])
    frames[3] = tmp_path / "0004.jpg"
    frames[3].write_bytes(b"")
    with pytest.raises(UsageError, match=r"0004\.jpg: empty image file"):
        run_benchmark({"static": StaticTracker()}, [crossing_variant("Crossing", frames=frames)],
                      tmp_path / "r")
    assert [p.name for p in tmp_path.iterdir()] == ["0004.jpg"]


def test_out_that_is_a_file_or_under_one_is_refused_before_work(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("mine")
    for out in (tmp_path / "file", tmp_path / "file" / "r"):
        assert run_cli(main, ["--tracker", "static", "--data", str(TRACKING), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file" in err, err
    assert (tmp_path / "file").read_text() == "mine"


def test_sigterm_leaves_no_temporary_and_no_report(tmp_path: Path) -> None:
    import os
    import signal
    import time

    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".report.{2**22 + 1}.abcdefgh.tmp"  # what a run killed with SIGKILL leaves
    stale.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "eval.benchmark", "--tracker", "static",
                             "--data", str(TRACKING), "--out", str(out / "report")], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
        while proc.poll() is None and time.monotonic() < deadline and (
                stale.exists() or not list((out / "report" / "finished" / "static").glob("[!.]*.json"))):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and stderr.strip().splitlines()[-1].startswith("terminated"), stderr
    assert [p.name for p in out.iterdir()] == ["report"] and hidden(out) == []  # resumable, no temporary
    assert (out / "report" / "settings.json").is_file() and not (out / "report" / "summary.json").exists()


def test_shards_deal_every_pair_to_exactly_one_rank() -> None:
    from eval.parallel import Shard
    from tracker.sequences import Sequence

    seqs = [Sequence(f"s{i}", [Path(f"{k}.jpg") for k in range(n)], np.ones((n, 4)), "otb")
            for i, n in enumerate([5, 50, 7, 30, 30, 2, 9])]
    pairs = [(t, None, s) for t in ("a", "b") for s in seqs]
    shares = [Shard(rank, 3).share(pairs) for rank in range(3)]
    dealt = [(t, s.name) for share in shares for t, _, s in share]
    assert sorted(dealt) == sorted((t, s.name) for t, _, s in pairs)  # all, none twice
    assert shares == [Shard(rank, 3).share(list(pairs)) for rank in range(3)]  # the same deal every time
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert Shard.from_env() is None or Shard.from_env().world > 1
