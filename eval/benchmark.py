"""Run trackers over tracking sequences and write a report: summary.json, OTB-layout results, plots, a table.

Report layout (docs/design.md section 6), built in a temporary directory renamed onto ``--out`` at the end
(Ctrl-C, SIGTERM or an error leave no partial report, and an earlier report stays as it was):
``summary.json``, ``table.txt``, ``success_plots.png``, ``precision_plots.png``,
``results/<tracker>/<seq>.txt`` (1-based x,y,w,h, comma separated, one row per frame from the sequence's
first; NaN before the init frame) and ``results/<tracker>/times/<seq>_time.txt`` (seconds per frame),
``results/<tracker>/confidence/<seq>_confidence.txt`` (``confidence,lost`` per frame: NaN,0 before the init
frame, 1,0 on it; the tracker's ``confidence`` and ``lost`` after each update),
plus ``data/`` (``eval.report``), ``index.html`` and ``thumbs/`` (``eval.html``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backbones.cli import (
    ArgumentParser,
    UsageError,
    add_device_arg,
    add_threads_arg,
    apply_threads,
    atomic_dir,
    atomic_path,
    atomic_write_text,
    check_output_dir,
    code_version,
    positive_int,
    resolve_device,
    run_cli,
)
from eval.bootstrap import format_ci
from eval.html import write_html
from eval.metrics import CE_THRESHOLDS, IOU_THRESHOLDS, mean_metrics, sequence_metrics
from eval.report import complete_summary
from eval.static import StaticTracker
from tracker.boxes import check_init_box
from tracker.sequences import load_sequences, read_frame

SPEC_HELP = "'static' (built-in baseline), a checkpoint PATH.safetensors, or NAME=PATH to name it"


# ---------------------------------------------------------------- trackers


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split a tracker SPEC into (name, checkpoint path or None for the static baseline); check it exists."""
    name, path = "", spec
    head, sep, tail = spec.partition("=")
    if sep and head and "/" not in head and os.sep not in head:
        name, path = head, tail
    if path == "static":
        return name or StaticTracker.name, None
    if not path.endswith(".safetensors"):
        raise UsageError(f"unknown tracker {spec!r}: use {SPEC_HELP}")
    if not Path(path).is_file():
        raise UsageError(f"tracker checkpoint not found: {path}")
    return name or Path(path).stem, path


def build_tracker(path: str | None, device: object, kernels: str = "packed") -> object:
    """The static baseline (``path`` None) or a SiamFC tracker loaded from a checkpoint."""
    if path is None:
        return StaticTracker()
    from tracker.siamfc import load_tracker  # lazy: eval's metrics and the baseline need no model code

    return load_tracker(path, device=device, kernels=kernels)


# ---------------------------------------------------------------- running


def _start(tracker: object, seq: object, first: int) -> float:
    """``tracker.init`` on the first valid frame's ground truth (one line if that box misses the frame);
    returns the seconds it took."""
    gt0 = np.array(seq.boxes[first], dtype=float)
    frame = read_frame(seq.frames[first])
    try:
        check_init_box(gt0, frame.shape[1], frame.shape[0])
    except ValueError as err:
        raise UsageError(f"sequence {seq.name}: the ground truth of frame {first + 1} "
                         f"({seq.frames[first]}) cannot start tracking: {err}") from None
    start = time.perf_counter()
    tracker.init(frame, gt0.copy())
    return time.perf_counter() - start


def track_sequence(tracker: object, seq: object, max_frames: int | None = None) -> dict:
    """Run ``tracker`` over one sequence from its first valid frame (initialised on its ground truth).

    Returns boxes / times for every frame of the sequence's run span (NaN / 0 before the init frame), the
    index of the init frame, and the seconds spent in ``update`` (image decoding excluded).
    """
    valid = np.asarray(seq.valid, dtype=bool)
    if not valid.any():
        raise ValueError(f"sequence {seq.name} has no valid ground-truth box to initialise on")
    first = int(np.argmax(valid))
    end = len(seq.frames) if max_frames is None else min(len(seq.frames), first + max_frames)
    boxes = np.full((end, 4), np.nan)
    times = np.zeros(end)
    flags = np.zeros((end, 2))  # confidence, lost
    flags[:first, 0] = np.nan
    times[first] = _start(tracker, seq, first)
    boxes[first] = seq.boxes[first]  # the first frame counts, set to the ground truth
    flags[first] = 1.0, 0.0
    for i in range(first + 1, end):
        frame = read_frame(seq.frames[i])
        start = time.perf_counter()
        box = tracker.update(frame)
        times[i] = time.perf_counter() - start
        boxes[i] = np.asarray(box, dtype=float).reshape(4)
        flags[i] = getattr(tracker, "confidence", np.nan), float(getattr(tracker, "lost", False))
    return {"boxes": boxes, "times": times, "first": first, "update_s": float(times[first + 1:].sum()),
            "updates": end - first - 1, "flags": flags}


def _fps(updates: int, seconds: float) -> float | None:
    """Frames per second of ``update`` calls, or None when nothing was timed."""
    return updates / seconds if updates and seconds > 0 else None


def _write_results(results_dir: Path, seq_name: str, boxes: np.ndarray, times: np.ndarray,
                   flags: np.ndarray | None = None) -> None:
    """Write boxes in the toolkit's OTB layout, converted back to 1-based coordinates, per-frame times and
    (``flags``) per-frame confidence,lost."""
    one_based = boxes + np.array([1.0, 1.0, 0.0, 0.0])
    with atomic_path(results_dir / f"{seq_name}.txt") as tmp:
        np.savetxt(tmp, one_based, fmt="%.3f", delimiter=",")
    with atomic_path(results_dir / "times" / f"{seq_name}_time.txt") as tmp:
        np.savetxt(tmp, times, fmt="%.8f")
    if flags is not None:
        with atomic_path(results_dir / "confidence" / f"{seq_name}_confidence.txt") as tmp:
            np.savetxt(tmp, flags, fmt=("%.4f", "%d"), delimiter=",")


def _jsonable(value: object) -> object:
    """Make tracker attributes (numpy scalars, tensors, dicts) JSON-serialisable."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "size", 1) == 1:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _run_tracker(name: str, tracker: object, sequences: list, report: Path, max_frames: int | None,
                 bar: tqdm) -> dict:
    """Track every sequence with one tracker, write its results files, and return its summary entry."""
    per_seq: dict[str, dict] = {}
    skipped: list[str] = []
    updates, seconds = 0, 0.0
    for seq in sequences:
        auc = np.mean([m["auc"] for m in per_seq.values()]) if per_seq else float("nan")
        bar.set_postfix(tracker=name, seq=seq.name, auc=f"{auc:.3f}")
        if not np.asarray(seq.valid).any():
            skipped.append(seq.name)
            bar.update(1)
            continue
        run = track_sequence(tracker, seq, max_frames)
        _write_results(report / "results" / name, seq.name, run["boxes"], run["times"], run["flags"])
        span = slice(run["first"], len(run["boxes"]))
        gt = np.asarray(seq.boxes, dtype=float)[span]
        metrics = sequence_metrics(run["boxes"][span], gt, np.asarray(seq.valid, dtype=bool)[span])
        metrics.update(fps=_fps(run["updates"], run["update_s"]), first_frame=run["first"],
                       frames_run=len(gt))
        per_seq[seq.name] = metrics
        updates += run["updates"]
        seconds += run["update_s"]
        bar.update(1)
    entry: dict = {"mean": mean_metrics(list(per_seq.values())), "fps": _fps(updates, seconds),
                   "update_seconds": seconds, "sequences": per_seq, "skipped": skipped}
    for attr in ("ops", "budget"):
        if hasattr(tracker, attr):
            entry[attr] = _jsonable(getattr(tracker, attr))
    return entry


def run_benchmark(trackers: Mapping[str, object], sequences: Iterable, out_dir: str | Path,
                  max_frames: int | None = None) -> dict:
    """Run each named tracker over ``sequences``, write the report directory ``out_dir``, return the summary.

    The report is built in a temporary directory beside ``out_dir`` and renamed onto it at the end, so a
    failure leaves nothing partial (and an earlier report stays as it was).
    """
    sequences = list(sequences)
    out = Path(out_dir)
    check_out_dir(out)
    check_sequences(sequences)
    for name in trackers:
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"invalid tracker name {name!r}: it names a results folder")
    with atomic_dir(out, replace=True) as tmp:
        summary: dict = {"code_version": code_version(), "max_frames": max_frames,
                         "sequences": [s.name for s in sequences], "trackers": {}}
        with tqdm(total=len(trackers) * len(sequences), desc="sequences", unit="seq", disable=None) as bar:
            for name, tracker in trackers.items():
                summary["trackers"][name] = _run_tracker(name, tracker, sequences, tmp, max_frames, bar)
        complete_summary(tmp, summary, sequences)  # data/, 95% bootstrap intervals, got10k's pooled AO
        atomic_write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic_write_text(tmp / "table.txt", format_table(summary) + "\n")
        plot_curves(summary, tmp)
        write_html(tmp, summary)
    return summary


def check_sequences(sequences: list) -> None:
    """Refuse a run that would score nothing (no sequence, or no valid ground truth) or whose
    results files would clash (a sequence name twice)."""
    if not sequences:
        raise UsageError("no sequences to run (is the split file empty?)")
    if not any(np.asarray(s.valid).any() for s in sequences):
        raise UsageError(f"none of the {len(sequences)} sequences has a valid ground-truth box (all NaN or "
                         "zero-size): there is nothing to score")
    seen = [s.name for s in sequences]
    twice = next((n for n in seen if seen.count(n) > 1), None)
    if twice:
        raise UsageError(f"sequence name {twice!r} occurs twice: results/<tracker>/<seq>.txt would clash")


def check_out_dir(out: Path, inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Refuse to replace anything but nothing, an empty directory or an earlier report (has summary.json),
    and a report folder that is, or holds, one of ``inputs``."""
    check_output_dir(out, "--out", inputs=inputs)
    if out.is_dir() and any(out.iterdir()) and not (out / "summary.json").is_file():
        raise UsageError(f"{out} is a non-empty directory that is not a report; choose another --out")


# ---------------------------------------------------------------- table and plots


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(summary: dict) -> str:
    """One row per tracker: AUC, precision@20px, AO (each with its 95% interval), SR0.50, SR0.75, FPS, frames,
    OPs and budget."""
    head = f"{'tracker':<24} {'AUC [95% CI]':<20} {'Prec [95% CI]':<20} {'AO [95% CI]':<20} {'SR.50':>6} " \
           f"{'SR.75':>6} {'FPS':>8} " \
           f"{'frames':>7} {'seqs':>5} {'OPs':>10} {'budget':>7}"
    lines = [head, "-" * len(head)]
    for name, t in summary["trackers"].items():
        m = t["mean"]
        ops, budget = t.get("ops"), t.get("budget")
        auc, prec, ao = (format_ci(m[k], m.get(f"{k}_ci95")) for k in ("auc", "precision", "ao"))
        lines.append(f"{name:<24} {auc:<20} {prec:<20} {ao:<20} {m['sr50']:6.3f} "
                     f"{m['sr75']:6.3f} {_fmt(t['fps'], '8.1f'):>8} {m['frames']:7d} {m['sequences']:5d} "
                     f"{_fmt(ops, '10.3g') if isinstance(ops, (int, float)) else '-':>10} "
                     f"{_fmt(budget, '7.3f') if isinstance(budget, (int, float)) else '-':>7}")
    return "\n".join(lines)


def plot_curves(summary: dict, report: Path) -> None:
    """Success and precision plots of OPE (as the toolkit draws them) with every tracker, as PNG files."""
    from matplotlib.figure import Figure  # the object API draws with Agg, no display or pyplot state

    panels = (("success_plots.png", IOU_THRESHOLDS, "success_curve", "auc", "Overlap threshold",
               "Success rate", "Success plots of OPE", (0, 1), "upper right"),
              ("precision_plots.png", CE_THRESHOLDS, "precision_curve", "precision",
               "Location error threshold", "Precision", "Precision plots of OPE", (0, 50), "upper left"))
    for fname, xs, curve, score, xlabel, ylabel, title, xlim, loc in panels:
        fig = Figure(figsize=(6, 4.5))
        ax = fig.add_subplot()
        for name, t in summary["trackers"].items():
            ax.plot(xs, t["mean"][curve], label=f"{name}: [{t['mean'][score]:.3f}]")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=xlim, ylim=(0, 1.05))
        ax.grid(True, alpha=0.3)
        ax.legend(loc=loc)
        with atomic_path(report / fname) as tmp:
            fig.savefig(tmp, format="png", dpi=120)


# ---------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m eval.benchmark``."""
    p = ArgumentParser(prog="python -m eval.benchmark", description=(
        "Run trackers over tracking sequences (OTB, VOT, UAV123, DTB70, GOT-10k layouts under one root) "
        "and write a report: summary.json (AUC, precision@20px, AO, SR0.50/0.75 per tracker and sequence, "
        "FPS of update(), OPs and budget), OTB-layout results/, success/precision PNG plots and a table."))
    p.add_argument("--tracker", action="append", required=True, metavar="SPEC",
                   help=f"tracker to run, repeatable: {SPEC_HELP}")
    p.add_argument("--data", metavar="ROOT", help="tracking data root (any supported layouts)")
    p.add_argument("--sample", action="store_true",
                   help="run on the built-in sample sequence too (alone without --data; tracker.sample)")
    p.add_argument("--split", metavar="FILE",
                   help="split file listing sequence folders relative to ROOT "
                        "(default: every sequence found)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR",
                   help="report directory to create (an earlier report there is replaced)")
    p.add_argument("--max-frames", type=positive_int, metavar="N",
                   help="track at most N frames of each sequence, counting the init frame (quick runs)")
    add_device_arg(p, default="cpu")
    add_threads_arg(p)
    p.add_argument("--kernels", choices=("packed", "float"), default="packed",
                   help="binary units bit-packed (XNOR-popcount, default) or float-simulated, to compare")
    return p


def benchmark_sequences(args: argparse.Namespace) -> list:
    """The sequences of --data (and --split), plus the built-in sample with --sample."""
    if args.data is None and not args.sample:
        raise UsageError("give --data ROOT (tracking data) or --sample (the built-in sample sequence)")
    if args.split and args.data is None:
        raise UsageError("--split needs --data ROOT: its entries are relative to ROOT")
    sequences = load_sequences(args.data, args.split) if args.data is not None else []
    if args.sample:
        from tracker.sample import load_sample  # lazy: builds (or checks) the cached sample only when asked

        sequences.append(load_sample())
    return sequences


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load trackers and sequences, run the benchmark and print its table."""
    args = build_parser().parse_args(argv)
    specs = [parse_spec(s) for s in args.tracker]
    names = [n for n, _ in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UsageError(f"tracker name {duplicate!r} given twice: name them with NAME=PATH")
    checkpoints = [path for _, path in specs if path]
    inputs = []
    if checkpoints:
        from backbones.checkpoint import checkpoint_files  # torch: only when there is a model to run

        inputs = [file for path in checkpoints for file in checkpoint_files(path)]
    check_out_dir(Path(args.out), inputs=[args.data, args.split, *inputs])
    sequences = benchmark_sequences(args)
    check_sequences(sequences)
    apply_threads(args.threads)
    device = resolve_device(args.device) if checkpoints else None
    trackers = {name: build_tracker(path, device, args.kernels) for name, path in specs}
    summary = run_benchmark(trackers, sequences, args.out, args.max_frames)
    print(format_table(summary))
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
