"""``python -m eval.view REPORT --sequence NAME [--trackers A B ...] --out video.mp4``: watch a report.

Renders one video frame per tracked frame of the sequence: the ground truth (white) and every chosen
tracker's box in its colour, a legend with each tracker's IoU on that frame, and under the image a strip
of every tracker's per-frame IoU over the whole run with a cursor at the current frame. It needs only the
report: the frames are found through its ``data`` record (``eval.report``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from backbones.cli import (
    ArgumentParser,
    UsageError,
    atomic_path,
    check_output_file,
    positive_float,
    run_cli,
)
from eval.draw import GT_COLOR, annotate, color, draw_legend
from eval.report import Report

STRIP_HEIGHT = 80
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def iou_strip(curves: list[tuple[np.ndarray, tuple[int, int, int]]], span: range, width: int,
              height: int = STRIP_HEIGHT) -> np.ndarray:
    """A dark band with each tracker's IoU per frame of ``span`` as a line (0 at the bottom, 1 at the top)."""
    band = np.full((height, width, 3), 24, np.uint8)
    top, bottom = 14, height - 4
    for level in (0.0, 0.5, 1.0):
        y = round(bottom - level * (bottom - top))
        cv2.line(band, (0, y), (width - 1, y), (70, 70, 70), 1)
    cv2.putText(band, "IoU", (4, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (200, 200, 200), 1, cv2.LINE_AA)
    xs = np.linspace(0, width - 1, len(span)) if len(span) > 1 else np.zeros(1)
    for ious, bgr in curves:
        values = ious[span.start:span.stop]
        ys = bottom - np.nan_to_num(values, nan=-1) * (bottom - top)
        for i in range(1, len(values)):
            if np.isfinite(values[i - 1]) and np.isfinite(values[i]):
                cv2.line(band, (round(xs[i - 1]), round(ys[i - 1])), (round(xs[i]), round(ys[i])), bgr, 1,
                         cv2.LINE_AA)
    return band


def _cursor(band: np.ndarray, position: int, count: int) -> np.ndarray:
    out = band.copy()
    x = round(position * (band.shape[1] - 1) / max(count - 1, 1))
    cv2.line(out, (x, 0), (x, band.shape[0] - 1), (255, 255, 255), 1)
    return out


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*CODECS[path.suffix.lower()]), fps, size)
    if not writer.isOpened():
        raise UsageError(f"--out {path}: OpenCV cannot write this video format")
    return writer


def _compose(image: np.ndarray, index: int, gt: np.ndarray, tracks: dict, band: np.ndarray,
             position: int, count: int) -> np.ndarray:
    """One video frame: boxes and legend on the image, the IoU strip with its cursor below."""
    drawn = [(t, boxes[index] if index < len(boxes) else np.full(4, np.nan), bgr)
             for t, (boxes, _, bgr) in tracks.items()]
    frame = annotate(image, gt[index], drawn, legend=False)
    labels = [(f"frame {index + 1}", (255, 255, 255)), ("ground truth", GT_COLOR)]
    labels += [(f"{t}  IoU {ious[index]:.2f}" if np.isfinite(ious[index]) else t, bgr)
               for t, (_, ious, bgr) in tracks.items()]
    draw_legend(frame, labels)
    if frame.shape[1] != band.shape[1]:  # a frame of another size than the first: fit it to the strip
        frame = cv2.resize(frame, (band.shape[1], round(frame.shape[0] * band.shape[1] / frame.shape[1])))
    return np.vstack([frame, _cursor(band, position, count)])


def render(report: Report, seq: str, trackers: list[str], out: Path, fps: float = 30.0) -> int:
    """Write the video of ``seq`` with ``trackers``' boxes to ``out``; return the number of frames written."""
    frames, gt = report.frames(seq), report.groundtruth(seq)
    scored = [t for t in trackers if seq in report.summary["trackers"][t]["sequences"]]
    if not scored:
        raise UsageError(f"none of the trackers {', '.join(trackers)} was scored on {seq!r}")
    spans = [report.run_span(t, seq) for t in scored]
    span = range(min(s.start for s in spans), max(s.stop for s in spans))
    tracks = {t: (report.boxes(t, seq), report.ious(t, seq), color(report.trackers.index(t))) for t in scored}
    writer, band = None, None
    with atomic_path(out) as tmp:
        try:
            for position, index in enumerate(span):
                image = cv2.imread(str(frames[index]), cv2.IMREAD_COLOR) if frames[index].is_file() else None
                if image is None:
                    raise UsageError(f"cannot read frame {frames[index]} (has the data root {report.root} "
                                     "moved? give its new place with --data)")
                if writer is None:
                    band = iou_strip([(ious, bgr) for _, ious, bgr in tracks.values()], span, image.shape[1])
                    writer = _open_writer(tmp, fps, (image.shape[1], image.shape[0] + band.shape[0]))
                writer.write(_compose(image, index, gt, tracks, band, position, len(span)))
        finally:
            if writer is not None:
                writer.release()
    return len(span)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m eval.view``."""
    p = ArgumentParser(prog="python -m eval.view", description=(
        "Render a sequence of an eval.benchmark report as a video: ground truth and every tracker's box, a "
        "legend with per-frame IoU, and an IoU strip over the whole run. Needs only the report."))
    p.add_argument("report", metavar="REPORT", help="report folder of eval.benchmark (or its summary.json)")
    p.add_argument("--sequence", required=True, metavar="NAME", help="sequence name, as in the report")
    p.add_argument("--trackers", nargs="+", metavar="NAME",
                   help="trackers to draw (default: all in the report)")
    p.add_argument("--out", required=True, metavar="VIDEO", help=f"video to write ({', '.join(CODECS)})")
    p.add_argument("--data", metavar="ROOT",
                   help="data root to read the frames from, when it moved since the report was written")
    p.add_argument("--fps", type=positive_float, default=30.0,
                   help="frames per second of the video (default 30)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Check the report, sequence, trackers and output, then render the video."""
    args = build_parser().parse_args(argv)
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: not a folder")
    report = Report(args.report, data_root=args.data)
    report.check_sequence(args.sequence)
    trackers = args.trackers or report.trackers
    report.check_trackers(trackers)
    out = Path(args.out)
    if out.suffix.lower() not in CODECS:
        raise UsageError(f"--out {out}: unknown video type {out.suffix or '(none)'}; use {', '.join(CODECS)}")
    check_output_file(out, "--out", inputs=[report.dir / "summary.json"])
    written = render(report, args.sequence, list(dict.fromkeys(trackers)), out, args.fps)
    print(f"wrote {written} frames of {args.sequence} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
