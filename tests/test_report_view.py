"""A benchmark report a person can look at: index.html whose every linked file exists, eval.view's video with
one frame per tracked frame, intervals in summary.json and the table, one-line errors for unknown names."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from backbones.cli import run_cli
from eval.benchmark import run_benchmark
from eval.static import StaticTracker

REPO = Path(__file__).resolve().parents[1]
TRACKING = REPO.parent / "shared" / "data" / "tracking"
ENTRIES = ("otb/Crossing", "vot/bag")
MAX_FRAMES = 12
pytestmark = pytest.mark.skipif(not all((TRACKING / e).is_dir() for e in ENTRIES),
                                reason=f"real tracking data not found under {TRACKING}")


class DriftTracker:
    """The ground truth drifting right by 2 px a frame: a tracker whose IoU falls, so 'worst' is the last."""

    def __init__(self, sequences: list) -> None:
        self.queue, self.boxes, self.i = list(sequences), None, 0

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        seq = self.queue.pop(0)
        self.boxes, self.i = seq.boxes, int(np.argmax(seq.valid))
        self.start = self.i

    def update(self, frame: np.ndarray) -> np.ndarray:
        self.i += 1
        return self.boxes[self.i] + np.array([2.0 * (self.i - self.start), 0, 0, 0])


class Links(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.targets += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracker.sequences import load_sequence

    sequences = [s for e in ENTRIES for s in load_sequence(e, TRACKING)]
    out = tmp_path_factory.mktemp("bench") / "report"
    run_benchmark({"drift": DriftTracker(sequences), "static": StaticTracker()}, sequences, out, MAX_FRAMES)
    return out


def test_summary_has_intervals_and_records_its_data(report: Path) -> None:
    summary = json.loads((report / "summary.json").read_text())
    for entry in summary["trackers"].values():
        mean = entry["mean"]
        for metric in ("auc", "precision", "ao"):
            low, high = mean[f"{metric}_ci95"]
            assert isinstance(mean[metric], float) and low <= mean[metric] <= high
    assert "[" in (report / "table.txt").read_text()  # the table shows the intervals
    data = summary["data"]
    assert Path(data["root"]) == TRACKING
    assert data["sequences"]["Crossing"]["folder"] == "otb/Crossing/img"
    frames = (report / "data" / "bag" / "frames.txt").read_text().splitlines()
    assert len(frames) == data["sequences"]["bag"]["frames"] and (Path(data["root"]) / frames[0]).is_file()


def test_index_html_names_only_files_that_exist(report: Path) -> None:
    parser = Links()
    parser.feed((report / "index.html").read_text(encoding="utf-8"))
    assert parser.targets, "index.html links nothing"
    for target in parser.targets:
        assert "://" not in target and not target.startswith("/"), f"not a relative link: {target}"
        assert (report / unquote(target)).is_file(), f"index.html names a missing file: {target}"
    thumbs = [t for t in parser.targets if t.startswith("thumbs/")]
    assert len(thumbs) == 3 * len(ENTRIES)
    assert {"success_plots.png", "precision_plots.png", "results/drift/bag.txt"} <= set(parser.targets)
    worst = cv2.imread(str(report / "thumbs" / "bag.worst.jpg"))
    assert worst is not None and worst.shape[1] == 240
    assert "frame 12," in (report / "index.html").read_text()  # drift is worst on the last frame tracked


def test_view_writes_one_frame_per_tracked_frame(report: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    from eval.view import main

    video = tmp_path / "bag.mp4"
    argv = [str(report), "--sequence", "bag", "--trackers", "drift", "static", "--out", str(video)]
    assert run_cli(main, argv) == 0
    capture = cv2.VideoCapture(str(video))
    count, first = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        first = frame if first is None else first
        count += 1
    capture.release()
    assert count == MAX_FRAMES
    image = cv2.imread(str(TRACKING / "vot" / "bag" / "00000001.jpg"))
    assert first.shape[1] == image.shape[1] and first.shape[0] > image.shape[0]  # frame + IoU strip
    assert "wrote 12 frames" in capsys.readouterr().out


def test_view_names_what_the_report_has(report: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from eval.view import main

    out = str(tmp_path / "v.mp4")
    assert run_cli(main, [str(report), "--sequence", "nope", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and "it has: Crossing, bag" in err[0]
    assert run_cli(main, [str(report), "--sequence", "bag", "--trackers", "drift", "ghost",
                          "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ghost'" in err[0] and "it has: drift, static" in err[0]
    assert run_cli(main, [str(report), "--sequence", "bag", "--data", str(tmp_path), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the data is not there: one line, nothing written
    assert len(err) == 1 and "cannot read frame" in err[0] and "--data" in err[0]
    assert not Path(out).exists() and not list(tmp_path.iterdir())
