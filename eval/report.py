"""What a benchmark report records about its data, and reading a finished report back.

Beside ``summary.json`` and ``results/`` a report holds, per sequence, ``data/<seq>/frames.txt`` (its
frame files relative to the data root, one per line) and ``data/<seq>/groundtruth.txt`` (its ground
truth in the results' layout: 1-based x,y,w,h, NaN where a frame is not scored). ``summary["data"]``
names the data root, each sequence's image folder and frame size, so the viewer and the HTML page need
only the report.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from backbones.cli import UsageError, atomic_path, atomic_write_text

ONE_BASED = np.array([1.0, 1.0, 0.0, 0.0])


def _frame_size(path: Path) -> list[int]:
    """Width and height of an image, from its header."""
    from PIL import Image

    with Image.open(path) as image:
        return list(image.size)


def record_data(report: Path, sequences: Iterable) -> dict:
    """Write each sequence's frame list and ground truth under ``report/data/``; return summary["data"]."""
    sequences = list(sequences)
    folders = [os.path.dirname(os.path.abspath(s.frames[0])) for s in sequences if s.frames]
    root = Path(os.path.commonpath(folders)) if folders else Path(".")
    if len(set(folders)) == 1:
        root = root.parent
    entries = {}
    for seq in sequences:
        frames = [Path(os.path.abspath(f)) for f in seq.frames]
        base = report / "data" / seq.name
        atomic_write_text(base / "frames.txt", "".join(f"{f.relative_to(root)}\n" for f in frames))
        gt = np.where(np.asarray(seq.valid, bool)[:, None], np.asarray(seq.boxes, float), np.nan)
        with atomic_path(base / "groundtruth.txt") as tmp:
            np.savetxt(tmp, gt + ONE_BASED, fmt="%.3f", delimiter=",")
        entries[seq.name] = {"folder": str(frames[0].parent.relative_to(root)), "frames": len(frames),
                             "size": _frame_size(frames[0])}
    return {"root": str(root), "sequences": entries}


def _read_rows(path: Path) -> np.ndarray:
    """A results-layout file (1-based x,y,w,h rows, comma separated) as 0-based float rows."""
    rows = np.loadtxt(path, delimiter=",", dtype=float, ndmin=2)
    return rows.reshape(-1, 4) - ONE_BASED


def report_dir(path: str | Path) -> Path:
    """The report folder of ``path`` (the folder or its summary.json); UsageError when it is not a report."""
    path = Path(path)
    folder = path.parent if path.name == "summary.json" else path
    if not (folder / "summary.json").is_file():
        raise UsageError(f"{path} is not a benchmark report (no summary.json); run python -m eval.benchmark")
    return folder


class Report:
    """A finished benchmark report: its summary, boxes, ground truth and frames."""

    def __init__(self, path: str | Path, summary: dict | None = None,
                 data_root: str | Path | None = None) -> None:
        self.dir = report_dir(path) if summary is None else Path(path)
        if summary is None:
            try:
                summary = json.loads((self.dir / "summary.json").read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise UsageError(f"cannot read {self.dir / 'summary.json'}: {err}") from None
        self.summary = summary
        self.data = summary.get("data") or {}
        self.root = Path(data_root) if data_root is not None else Path(self.data.get("root", "."))

    @property
    def trackers(self) -> list[str]:
        return list(self.summary["trackers"])

    @property
    def sequences(self) -> list[str]:
        """Sequences some tracker was scored on, in run order."""
        scored = {s for t in self.summary["trackers"].values() for s in t["sequences"]}
        return [s for s in self.summary["sequences"] if s in scored]

    def check_sequence(self, name: str) -> None:
        """UsageError naming the report's sequences when ``name`` is not one of them."""
        if name not in self.sequences:
            raise UsageError(f"sequence {name!r} is not in the report {self.dir}; "
                             f"it has: {', '.join(self.sequences)}")
        if name not in self.data.get("sequences", {}):
            raise UsageError(f"the report {self.dir} records no frames for {name!r} (written by an older "
                             "eval.benchmark): run the benchmark again")

    def check_trackers(self, names: Iterable[str]) -> None:
        """UsageError naming the report's trackers when one of ``names`` is not among them."""
        for name in names:
            if name not in self.summary["trackers"]:
                raise UsageError(f"tracker {name!r} is not in the report {self.dir}; "
                                 f"it has: {', '.join(self.trackers)}")

    def frames(self, seq: str) -> list[Path]:
        """The sequence's frame files, under the recorded data root (or the one given instead)."""
        lines = (self.dir / "data" / seq / "frames.txt").read_text(encoding="utf-8").splitlines()
        return [self.root / line for line in lines if line]

    def groundtruth(self, seq: str) -> np.ndarray:
        """0-based boxes of every frame, NaN where a frame is not scored."""
        return _read_rows(self.dir / "data" / seq / "groundtruth.txt")

    def boxes(self, tracker: str, seq: str) -> np.ndarray:
        """0-based boxes of ``tracker`` from the sequence's first frame (NaN before its init frame)."""
        return _read_rows(self.dir / "results" / tracker / f"{seq}.txt")

    def run_span(self, tracker: str, seq: str) -> range:
        """Frames the tracker was run on: its init frame to the last frame tracked."""
        entry = self.summary["trackers"][tracker]["sequences"][seq]
        return range(entry["first_frame"], entry["first_frame"] + entry["frames_run"])

    def ious(self, tracker: str, seq: str) -> np.ndarray:
        """Per-frame IoU over the tracked frames (NaN where the frame is not scored or not tracked)."""
        from got10k.utils.metrics import rect_iou

        gt = self.groundtruth(seq)
        pred = np.full_like(gt, np.nan)
        boxes = self.boxes(tracker, seq)
        pred[: len(boxes)] = boxes[: len(gt)]
        out = np.full(len(gt), np.nan)
        ok = np.isfinite(gt).all(axis=1)
        span = np.zeros(len(gt), bool)
        span[list(self.run_span(tracker, seq))] = True
        scored = ok & span
        if scored.any():
            got = rect_iou(pred[scored].copy(), gt[scored].copy())
            out[scored] = np.where(np.isfinite(got), got, 0.0)
        return out


def got10k_ao(report: Report, tracker: str) -> float:
    """The tracker's AO as the got10k toolkit reports it (``eval.metrics.pooled_ao``), from the report."""
    from eval.metrics import pooled_ao

    runs = []
    for seq in report.summary["trackers"][tracker]["sequences"]:
        span = report.run_span(tracker, seq)
        gt = report.groundtruth(seq)[span.start:span.stop]
        pred = report.boxes(tracker, seq)[span.start:span.stop]
        runs.append((pred, gt, np.isfinite(gt).all(axis=1), report.data["sequences"][seq]["size"]))
    return pooled_ao(runs)


def complete_summary(report: Path, summary: dict, sequences: Iterable) -> None:
    """The benchmark's hook once results are written: record the data, add the bootstrap intervals and the
    got10k toolkit's pooled AO (``mean.ao_got10k``) to ``summary``."""
    from eval.bootstrap import add_intervals

    summary["data"] = record_data(report, sequences)
    add_intervals(summary)
    finished = Report(report, summary)
    for name, entry in summary["trackers"].items():
        entry["mean"]["ao_got10k"] = got10k_ao(finished, name)
