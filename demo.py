"""b2track live demo: track one object in a webcam stream, a video file, an image folder or the sample.

Draw the target on the first frame (or give --init x,y,w,h) and watch a budget-aware partially binary
SiamFC tracker follow it, with its speed (FPS), its budget (fraction of the full-precision OPs it
spends), its cost per frame (3 search scales, in G OPs) and its confidence on every frame. With no
source (or --sample) it tracks the built-in sample sequence and scores it against its ground truth.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from backbones.cli import (
    ArgumentParser,
    Terminated,
    UsageError,
    add_device_arg,
    add_threads_arg,
    apply_threads,
    atomic_path,
    check_output_file,
    int_range,
    interrupts_held,
    positive_int,
    remove_stale_temporaries,
    resolve_device,
    run_cli,
)
from eval.draw import draw_box

if TYPE_CHECKING:  # torch loads inside main(), where Ctrl-C during start-up is one line
    from tracker.siamfc import SiamFCTracker

WINDOW = "b2track"
DEFAULT_BUDGET = "0.3"
DEFAULT_FPS = 25.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
GREEN, RED, WHITE = (0, 200, 0), (0, 0, 255), (255, 255, 255)
KEYS = {ord("q"): "quit", 27: "quit", ord(" "): "pause", ord("r"): "reselect"}
SAMPLE_OUTPUT = "b2track_sample.mp4"
MAX_WEBCAM = 9999  # OpenCV's legacy indices add an API offset (200 + N: V4L2); past int32 it crashes

EPILOG = """\
keys (with a window): q or Esc quits, space pauses / resumes, r re-selects the target on the current
frame. Ctrl-C stops too, keeping what was written. Without a display (--no-display, or no DISPLAY /
WAYLAND_DISPLAY on Linux) the demo runs headless and needs --init.

examples:
  python demo.py                  # the built-in sample: writes b2track_sample.mp4, prints AUC and FPS
  python demo.py --webcam 0 --budget 0.3
  python demo.py --video clip.mp4 --budget min --output tracked.mp4
  python demo.py --images frames/ --init 305,110,165,252 --no-display --save-boxes boxes.txt
  python demo.py --video clip.mp4 --checkpoint runs/my_run/checkpoint.safetensors

The zoo is models/ (or $B2TRACK_MODELS): <backbone>_b<budget>.safetensors + .json sidecar."""


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python demo.py``."""
    p = ArgumentParser(prog="python demo.py", description=__doc__,
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sample", action="store_true",
                     help="track the built-in sample sequence (the default when no source is given) and "
                          "print its success AUC and precision at 20 px against the ground truth")
    src.add_argument("--video", metavar="FILE", help="a video file OpenCV can read (.mp4, .avi, ...)")
    src.add_argument("--webcam", type=int_range(0, MAX_WEBCAM), metavar="N",
                     help="webcam index (0 = the default camera)")
    src.add_argument("--images", metavar="DIR",
                     help=f"a folder of frames ({', '.join(IMAGE_SUFFIXES)}), in natural name order")
    p.add_argument("--budget", metavar="B",
                   help="zoo model to run: its budget (e.g. 1.0, 0.5, 0.3) or 'min' for the smallest "
                        f"shipped (default: {DEFAULT_BUDGET})")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="run this checkpoint (.safetensors with its .json sidecar) instead of a zoo model")
    p.add_argument("--init", metavar="x,y,w,h",
                   help="first-frame target box in pixels (0-based top-left corner, width, height); "
                        "default: draw it with the mouse")
    p.add_argument("--output", metavar="OUT.mp4",
                   help=f"write the annotated video (every frame, mp4v) here (with the sample: default "
                        f"{SAMPLE_OUTPUT})")
    p.add_argument("--save-boxes", metavar="FILE",
                   help="write one x,y,w,h,confidence,lost line per frame (first = init box, 1.00, 0)")
    p.add_argument("--no-display", action="store_true", help="run headless (no window)")
    p.add_argument("--max-frames", type=positive_int, metavar="N",
                   help="stop after N frames, counting the first (default: the whole source)")
    add_device_arg(p)
    add_threads_arg(p)
    p.add_argument("--kernels", choices=("packed", "float"), default="packed",
                   help="binary units bit-packed (XNOR-popcount, default) or float-simulated, to compare")
    return p


def parse_box(text: str) -> list[float]:
    """``x,y,w,h`` -> four finite floats; anything else is a UsageError."""
    parts = [p.strip() for p in re.split(r"[,\s]+", text.strip()) if p.strip()]
    try:
        box = [float(p) for p in parts]
    except ValueError:
        box = []
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise UsageError(f"--init must be x,y,w,h (four numbers, in pixels), got {text!r}")
    return box


def has_display() -> bool:
    """Whether a window can be opened: on Linux only with DISPLAY or WAYLAND_DISPLAY set."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Before anything is opened: outputs that can be written, that are none of ``inputs`` nor each other.

    Temporaries a killed earlier run left beside them are removed.
    """
    for option, name in (("--output", args.output), ("--save-boxes", args.save_boxes)):
        if name == "":
            raise UsageError(f"{option}: the path is empty")
    if args.output and Path(args.output).suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--output {args.output} must end in one of {', '.join(VIDEO_SUFFIXES)}")
    if args.output and args.save_boxes:
        check_output_file(args.save_boxes, "--save-boxes", inputs=[args.output])
    for option, name in (("--output", args.output), ("--save-boxes", args.save_boxes)):
        if name:
            remove_stale_temporaries(check_output_file(name, option, inputs=inputs))


def run_inputs(args: argparse.Namespace, checkpoint: Path) -> list[Path]:
    """Every file this run reads: the video or the frames, the checkpoint and its sidecar."""
    from backbones.checkpoint import checkpoint_files

    found = [Path(args.video)] if args.video else list_images(args.images) if args.images else []
    return [*found, *checkpoint_files(checkpoint)]


def resolve_checkpoint(args: argparse.Namespace) -> Path:
    """The checkpoint to run: --checkpoint, or the zoo model of --budget (UsageError if none ships)."""
    if args.checkpoint and args.budget:
        raise UsageError("give --budget (a zoo model) or --checkpoint, not both")
    if args.checkpoint:
        return Path(args.checkpoint)
    from tracker.zoo import find_zoo

    return find_zoo(args.budget or DEFAULT_BUDGET)


# ---------------------------------------------------------------- sources


class FrameSource:
    """Frames streamed one at a time from a capture or a list of image files."""

    def __init__(self, name: str, fps: float, total: int | None):
        self.name, self.fps, self.total = name, fps, total

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""


class CaptureSource(FrameSource):
    """A video file or a webcam through ``cv2.VideoCapture``."""

    def __init__(self, name: str, capture: cv2.VideoCapture, live: bool):
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        super().__init__(name, fps if math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS,
                         None if live or count <= 0 else count)
        self.capture = capture

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


class FolderSource(FrameSource):
    """Image files read in order; every image must have the first one's size."""

    def __init__(self, name: str, files: list[Path]):
        super().__init__(name, DEFAULT_FPS, len(files))
        self.files = iter(files)
        self.size: tuple[int, int] | None = None

    def read(self) -> np.ndarray | None:
        path = next(self.files, None)
        if path is None:
            return None
        frame = read_image(path)
        size = frame.shape[1::-1]
        if self.size is not None and size != self.size:
            raise UsageError(f"image {path} is {size[0]}x{size[1]}, "
                             f"the first image is {self.size[0]}x{self.size[1]}")
        self.size = size
        return frame


def read_image(path: Path) -> np.ndarray:
    """One BGR image, or a UsageError naming the file (empty, unreadable, or not an image)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    if frame is None:
        empty = " (an empty file)" if data.size == 0 else ""
        raise UsageError(f"cannot read image {path}{empty}: not an image OpenCV can decode")
    return frame


def _natural_key(path: Path) -> list:
    """Sort key that puts frame2.jpg before frame10.jpg."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _quiet_video(make: Callable, *args) -> object:
    """``make(*args)`` (a capture or a writer) with OpenCV's and FFmpeg's own messages silenced: we report
    one line. FFmpeg reads its level when first used, so every video object is made through here."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return make(*args)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _open_capture(target: str | int) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of a file or a webcam, quietly."""
    return _quiet_video(cv2.VideoCapture, target)


def list_images(folder: str | Path) -> list[Path]:
    """The frames of an --images folder in natural name order; UsageError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"image folder not found: {folder}")
    files = sorted((f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()),
                   key=_natural_key)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def open_source(args: argparse.Namespace) -> FrameSource:
    """Open --video, --webcam or --images; UsageError when it does not open."""
    if args.images is not None:
        return FolderSource(str(args.images), list_images(args.images))
    if args.video is not None:
        path = Path(args.video)
        if path.is_dir():
            raise UsageError(f"--video {path} is a folder; use --images for a folder of frames")
        if not path.is_file():
            raise UsageError(f"video not found: {path}")
        capture = _open_capture(str(path))
        if not capture.isOpened():
            raise UsageError(f"cannot read video {path}: not a video OpenCV can decode")
        return CaptureSource(str(path), capture, live=False)
    capture = _open_capture(args.webcam)
    if not capture.isOpened():
        raise UsageError(f"webcam {args.webcam} does not open (not connected, busy, or no permission)")
    return CaptureSource(f"webcam {args.webcam}", capture, live=True)


def first_frame(source: FrameSource) -> np.ndarray:
    """The first frame, or a UsageError when the source has none."""
    frame = source.read()
    if frame is None:
        raise UsageError(f"{source.name}: no readable frame (empty or corrupt)")
    return frame


# ---------------------------------------------------------------- drawing and keys


@dataclass
class Overlay:
    """What is printed on a frame."""

    name: str
    budget: float
    gops: float
    fps: float = float("nan")
    confidence: float = 1.0
    lost: bool = False
    paused: bool = False


def draw_overlay(frame: np.ndarray, box, info: Overlay) -> np.ndarray:
    """A copy of ``frame`` with the box (red with 'LOST?' when the target is likely lost) and the figures."""
    out = frame.copy()
    scale = max(0.7, min(1.5, out.shape[1] / 640))
    thick = max(1, round(2 * scale))
    colour = RED if info.lost else GREEN
    corner = draw_box(out, box, colour, thick, antialiased=False)
    if info.lost and corner is not None:
        x, y = corner
        cv2.putText(out, "LOST?", (max(0, x), max(int(20 * scale), y - 6)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.8 * scale, RED, thick, cv2.LINE_AA)
    fps = "--" if math.isnan(info.fps) else f"{info.fps:.1f}"
    lines = [f"{info.name}  budget {info.budget:.3f}  {info.gops:.2f} GOPs/frame",
             f"FPS {fps}  conf {info.confidence:.2f}" + ("  PAUSED" if info.paused else "")]
    line_h = int(24 * scale) + 4
    band = out[: line_h * len(lines) + 6]
    band[:] = (band * 0.45).astype(np.uint8)  # darken the top so the text reads on any frame
    for k, text in enumerate(lines):
        cv2.putText(out, text, (6, line_h * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, WHITE, thick,
                    cv2.LINE_AA)
    return out


def show(image: np.ndarray, wait_ms: int = 1) -> str | None:
    """Show a frame; the action of the key pressed ('quit', 'pause', 'reselect') or None."""
    cv2.imshow(WINDOW, image)
    key = cv2.waitKey(wait_ms) & 0xFF
    if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
        return "quit"  # the user closed the window
    return KEYS.get(key)


def select_target(frame: np.ndarray) -> list[float] | None:
    """Let the user drag a box on ``frame`` (ENTER/space confirms, c cancels); None when cancelled."""
    print("draw the target with the mouse, then press ENTER or space (c cancels)", file=sys.stderr)
    x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True, fromCenter=False)
    return [float(x), float(y), float(w), float(h)] if w > 0 and h > 0 else None


def start_tracker(tracker: SiamFCTracker, frame: np.ndarray, box: list[float]) -> None:
    """``tracker.init`` with a bad box (zero size, outside the frame) turned into a UsageError."""
    try:
        tracker.init(frame, box)
    except ValueError as err:
        raise UsageError(f"--init: {err}") from None


# ---------------------------------------------------------------- outputs


def decoded_frames(path: Path) -> int:
    """How many frames a video file's container says it holds (0 when it does not open)."""
    capture = _open_capture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
    finally:
        capture.release()


@contextmanager
def video_sink(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[Callable[[np.ndarray], None]]:
    """Write frames to ``path`` (mp4v) through a temporary file renamed at the end, removed on failure.

    OpenCV's writer reports no write error (a full disk), so the finished file is opened again and
    renamed into place only when it holds every frame.
    """
    with atomic_path(path) as tmp:
        writer = _quiet_video(cv2.VideoWriter, str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        written = 0

        def write(frame: np.ndarray) -> None:
            nonlocal written
            with interrupts_held():  # a frame is written and counted, or neither
                writer.write(frame)
                written += 1

        try:
            if not writer.isOpened():
                raise UsageError(f"cannot write video {path}: OpenCV has no mp4v writer for it")
            yield write
        finally:
            writer.release()
        found = decoded_frames(tmp)
        if found != written:
            raise UsageError(f"writing video {path} failed: the file holds {found} of {written} frames "
                             "(is the disk full?); nothing was written")


@contextmanager
def boxes_sink(path: str | Path) -> Iterator[Callable[[np.ndarray, float, bool], None]]:
    """Write one ``x,y,w,h,confidence,lost`` line per frame to ``path`` (lost: 1 or 0), atomically; a failed
    write is one line."""
    def failed(err: OSError) -> UsageError:
        return UsageError(f"writing {path} failed: {err.strerror or err}; nothing was written")

    with atomic_path(path) as tmp:
        f = tmp.open("w", encoding="utf-8")

        def write(box, confidence: float, lost: bool) -> None:
            try:
                f.write(",".join(f"{float(v):.2f}" for v in box) + f",{confidence:.4f},{int(lost)}\n")
            except OSError as err:
                raise failed(err) from None

        try:
            yield write
        finally:
            try:
                f.close()
            except OSError as err:
                raise failed(err) from None


@contextmanager
def open_outputs(args: argparse.Namespace, fps: float, size: tuple[int, int]) -> Iterator[list[Callable]]:
    """The writers asked for (--output video, --save-boxes), as ``write(annotated, box, info)`` callables.

    The video is finished (and checked) first, so a video that fails leaves no boxes file either.
    """
    with ExitStack() as stack:
        writers: list[Callable] = []
        try:
            if args.save_boxes:
                write_box = stack.enter_context(boxes_sink(args.save_boxes))
                writers.append(lambda annotated, box, info: write_box(box, info.confidence, info.lost))
            if args.output:
                write_frame = stack.enter_context(video_sink(args.output, fps, size))
                writers.append(lambda annotated, box, info: write_frame(annotated))
        except OSError as err:
            raise UsageError(f"cannot write output: {err}") from None
        yield writers


# ---------------------------------------------------------------- the loop


@dataclass
class RunStats:
    """Counts and times of one run; FPS counts update() only (decoding and drawing excluded)."""

    frames: int = 0
    update_seconds: float = 0.0
    wall_seconds: float = 0.0
    lost_frames: int = 0
    reselections: int = 0
    stopped: str = "end of source"
    mode: str = "headless"

    @property
    def fps(self) -> float:
        return (self.frames - 1) / self.update_seconds if self.update_seconds > 0 else float("nan")


def wait_paused(annotated: np.ndarray) -> str | None:
    """Hold the current frame until space (resume), q/Esc (quit) or r (re-select)."""
    while True:
        action = show(annotated, 50)
        if action in ("quit", "reselect"):
            return action
        if action == "pause":
            return None


def react(action: str | None, frame: np.ndarray, box, info: Overlay, tracker: SiamFCTracker,
          stats: RunStats) -> bool:
    """Act on a key ('pause' holds the frame, 'reselect' re-draws the target); True when quitting."""
    if action == "pause":
        info.paused = True
        action = wait_paused(draw_overlay(frame, box, info))
        info.paused = False
    if action == "reselect":
        chosen = select_target(frame)
        if chosen is not None:
            tracker.init(frame, chosen)
            stats.reselections += 1
    return action == "quit"


def stop_name(stop: KeyboardInterrupt) -> str:
    """How a run was stopped from outside: 'SIGTERM' or 'Ctrl-C'."""
    return "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"


def track(source: FrameSource, tracker: SiamFCTracker, frame: np.ndarray, box: list[float],
          writers: list[Callable], display: bool, max_frames: int | None) -> RunStats:
    """Track frame by frame: write and show each annotated frame, handle the keys; returns the stats."""
    stats, times = RunStats(mode="in a window" if display else "headless"), deque(maxlen=30)
    info = Overlay(tracker.name, tracker.budget, tracker.cfg.scale_num * tracker.ops / 1e9)
    total = min(n for n in (source.total, max_frames, sys.maxsize) if n is not None)
    bar = tqdm(total=None if total == sys.maxsize else total, unit="frame", desc="tracking",
               disable=True if display else None)  # a bar on a terminal only, and never beside a window
    start = time.perf_counter()
    try:
        while True:
            annotated = draw_overlay(frame, box, info)
            for write in writers:
                write(annotated, box, info)
            stats.frames += 1
            bar.update()
            if display and react(show(annotated), frame, box, info, tracker, stats):
                stats.stopped = "quit"
                break
            if max_frames is not None and stats.frames >= max_frames:
                stats.stopped = f"--max-frames {max_frames}"
                break
            frame = source.read()
            if frame is None:
                break
            t0 = time.perf_counter()
            box = tracker.update(frame)
            dt = time.perf_counter() - t0
            stats.update_seconds += dt
            stats.lost_frames += int(tracker.lost)
            times.append(dt)
            info.fps, info.confidence, info.lost = len(times) / sum(times), tracker.confidence, tracker.lost
            if stats.frames % 10 == 0:
                bar.set_postfix(fps=f"{info.fps:.1f}", conf=f"{info.confidence:.2f}", refresh=False)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: stop here, keeping what was written
        if stats.frames == 0:
            raise  # nothing written yet: the outputs are dropped and run_cli reports the interruption
        stats.stopped = stop_name(stop)
    finally:
        bar.close()
        stats.wall_seconds = time.perf_counter() - start
    return stats


def summary(source: FrameSource, tracker: SiamFCTracker, stats: RunStats, args: argparse.Namespace) -> str:
    """The lines printed at the end of a run."""
    gops = tracker.ops / 1e9
    wall = stats.frames / stats.wall_seconds if stats.wall_seconds > 0 else float("nan")
    scales = tracker.cfg.scale_num
    run = f"{stats.frames} frames from {source.name} ({stats.stopped})"
    cost = f"budget {tracker.budget:.3f} (achieved), {scales} x {gops:.3f} = {scales * gops:.3f} GOPs/frame"
    lines = [f"{run}, model {tracker.name} on {tracker.device} (kernels: {tracker.kernel_path}), {stats.mode}",
             f"mean FPS {stats.fps:.1f} (update only), {wall:.1f} end to end (decoding, drawing, writing)",
             cost, f"frames flagged LOST?: {stats.lost_frames}"]
    if stats.reselections:
        lines[-1] += f", re-selections: {stats.reselections}"
    lines += [f"wrote {name}" for name in (args.output, args.save_boxes) if name]
    return "\n".join(lines)


# ---------------------------------------------------------------- the built-in sample


@dataclass
class SampleRun:
    """The sample being tracked: its ground truth, and the boxes of the frames tracked so far."""

    name: str
    truth: np.ndarray
    boxes: list

    def record(self, annotated: np.ndarray, box, info: Overlay) -> None:
        """A writer (as ``open_outputs`` gives them) that keeps each frame's box."""
        self.boxes.append(np.asarray(box, dtype=float))

    def report(self) -> str:
        """Success AUC and precision at 20 px of the frames tracked (the first counts, as in OTB)."""
        from eval.metrics import sequence_metrics

        n = len(self.boxes)
        scores = sequence_metrics(np.stack(self.boxes), self.truth[:n])
        return (f"sample {self.name}: success AUC {scores['auc']:.3f}, "
                f"precision@20px {scores['precision']:.3f} over {n} frames (against its exact ground truth)")


def use_sample(args: argparse.Namespace) -> SampleRun | None:
    """--sample or no source: the cached sample as --images, its first box as --init, a default --output."""
    if not args.sample and args.video is None and args.webcam is None and args.images is None:
        args.sample = True
    if not args.sample:
        return None
    from tracker.sample import load_sample

    seq = load_sample()
    args.images = str(seq.frames[0].parent)
    args.init = args.init or ",".join(repr(float(v)) for v in seq.boxes[0])
    args.output = args.output or SAMPLE_OUTPUT
    return SampleRun(seq.name, seq.boxes, [])


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code (bad input raises UsageError -> exit 2 through run_cli)."""
    args = build_parser().parse_args(argv)
    sample = use_sample(args)
    init_box = parse_box(args.init) if args.init is not None else None
    display = not args.no_display and has_display()
    if init_box is None and not display:
        raise UsageError("--init x,y,w,h is needed without a display (--no-display, or no DISPLAY / "
                         "WAYLAND_DISPLAY): there is no window to draw the target in")
    checkpoint = resolve_checkpoint(args)
    check_outputs(args, run_inputs(args, checkpoint))
    apply_threads(args.threads)
    device = resolve_device(args.device)
    from tracker.siamfc import load_tracker

    source = open_source(args)
    try:
        frame = first_frame(source)
        tracker = load_tracker(checkpoint, device=device, kernels=args.kernels)
        box = init_box if init_box is not None else select_target(frame)
        if box is None:
            print("no target selected (selection cancelled); nothing to track", file=sys.stderr)
            return 1
        start_tracker(tracker, frame, box)
        with open_outputs(args, source.fps, frame.shape[1::-1]) as writers:
            if sample is not None:
                writers.append(sample.record)
            stats = track(source, tracker, frame, box, writers, display, args.max_frames)
    finally:
        source.close()
        if display:
            cv2.destroyAllWindows()
    print(summary(source, tracker, stats, args))
    if sample is not None:
        print(sample.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
