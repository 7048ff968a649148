"""Run trackers over tracking sequences and write a report: summary.json, OTB-layout results, plots, a table.

Report layout (docs/design.md section 6), in ``--out``: ``settings.json`` and ``finished/`` (the resumable
state, ``eval.resume``), ``summary.json``, ``table.txt``, ``success_plots.png``, ``precision_plots.png``,
``results/<tracker>/<seq>.txt`` (1-based x,y,w,h, comma separated, one row per frame from the sequence's
first; NaN before the init frame) and ``results/<tracker>/times/<seq>_time.txt`` (seconds per frame),
``results/<tracker>/confidence/<seq>_confidence.txt`` (``confidence,lost`` per frame: NaN,0 before the init
frame, 1,0 on it; the tracker's ``confidence`` and ``lost`` after each update),
plus ``data/`` (``eval.report``), ``index.html`` and ``thumbs/`` (``eval.html``). Every file is written
atomically, so Ctrl-C, SIGTERM or an error leave finished pairs complete and no temporary; the same
command again tracks only the rest. Pairs run here, in ``--workers`` processes or over torchrun ranks
(``eval.parallel``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from backbones.cli import (
    MAX_WORKERS,
    ArgumentParser,
    UsageError,
    add_device_arg,
    add_threads_arg,
    apply_threads,
    atomic_path,
    atomic_write_text,
    check_output_dir,
    code_version,
    int_range,
    positive_int,
    resolve_device,
    run_cli,
)
from eval.bootstrap import format_ci
from eval.datasets import DATASETS, load_dataset
from eval.html import write_html
from eval.metrics import CE_THRESHOLDS, IOU_THRESHOLDS, mean_metrics, sequence_metrics
from eval.parallel import Group, Pair, Shard, run_pairs
from eval.report import complete_summary
from eval.resume import (
    SETTINGS,
    discard_unstarted,
    file_digest,
    prepare_report,
    read_record,
    read_settings,
    run_settings,
    write_record,
)
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


@dataclass(frozen=True)
class TrackerSpec:
    """A tracker to build where it runs (this process, a worker, a torchrun rank): the static baseline
    (``path`` None) or a checkpoint, with its kernels and device."""

    path: str | None = None
    kernels: str = "packed"
    device: str = "cpu"

    def build(self) -> object:
        return build_tracker(self.path, self.device if self.path else None, self.kernels)

    def describe(self) -> dict:
        """The checkpoint's and its sidecar's digests (not their path: a moved file is the same tracker)."""
        if self.path is None:
            return {"tracker": "static"}
        from backbones.checkpoint import checkpoint_files

        files = {f.name: file_digest(f) for f in checkpoint_files(self.path) if f.is_file()}
        return {"checkpoint": files, "kernels": self.kernels, "device": str(self.device).split(":")[0]}


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


def _sequence_entry(seq: object, run: dict) -> dict:
    """The per-sequence figures of one finished run: the metrics over its span, FPS, init frame, length."""
    span = slice(run["first"], len(run["boxes"]))
    gt = np.asarray(seq.boxes, dtype=float)[span]
    metrics = sequence_metrics(run["boxes"][span], gt, np.asarray(seq.valid, dtype=bool)[span])
    metrics.update(fps=_fps(run["updates"], run["update_s"]), first_frame=run["first"], frames_run=len(gt))
    return metrics


def run_pair(name: str, tracker: object, seq: object, report: str | Path,
             max_frames: int | None = None) -> dict:
    """Track one sequence with one tracker, write its results files, then its finished record (last, so a
    pair counts as done only with all its files); return the record."""
    run = track_sequence(tracker, seq, max_frames)
    report = Path(report)
    _write_results(report / "results" / name, seq.name, run["boxes"], run["times"], run["flags"])
    record = {"metrics": _sequence_entry(seq, run), "updates": run["updates"], "update_s": run["update_s"],
              "attributes": {a: _jsonable(getattr(tracker, a)) for a in ("ops", "budget")
                             if hasattr(tracker, a)}}
    write_record(report, name, seq.name, record)
    return record


def _tracker_entry(records: list[dict], skipped: list[str]) -> dict:
    """A tracker's summary entry from its finished records (in sequence order)."""
    per_seq = {r["sequence"]: r["metrics"] for r in records}
    updates = sum(r["updates"] for r in records)
    seconds = float(sum(r["update_s"] for r in records))
    entry: dict = {"mean": mean_metrics(list(per_seq.values())), "fps": _fps(updates, seconds),
                   "update_seconds": seconds, "sequences": per_seq, "skipped": skipped}
    if records:
        entry.update(records[0].get("attributes", {}))
    return entry


def summarize(out: str | Path, names: Iterable[str], sequences: list) -> dict:
    """Merge the finished records of every (tracker, sequence) pair into the report's summary, and write
    summary.json, table.txt, the plots and index.html. Every pair must be finished."""
    out = Path(out)
    settings = read_settings(out) or {}
    summary: dict = {"code_version": settings.get("code_version", code_version()),
                     "max_frames": settings.get("max_frames"), "sequences": [s.name for s in sequences],
                     "trackers": {}}
    for name in names:
        records, skipped = [], []
        for seq in sequences:
            if not np.asarray(seq.valid).any():
                skipped.append(seq.name)
                continue
            record = read_record(out, name, seq.name)
            if record is None:
                raise RuntimeError(f"{name} on {seq.name} is not finished: cannot summarize {out}")
            records.append({**record, "sequence": seq.name})
        summary["trackers"][name] = _tracker_entry(records, skipped)
    complete_summary(out, summary, sequences)  # data/, 95% bootstrap intervals, got10k's pooled AO
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "table.txt", format_table(summary) + "\n")
    plot_curves(summary, out)
    write_html(out, summary)
    return summary


def describe_tracker(tracker: object) -> dict:
    """What identifies a tracker in a report's settings: a spec's checkpoint digest and kernels, or an
    object's class (and its ``describe()`` when it has one)."""
    if isinstance(tracker, TrackerSpec):
        return tracker.describe()
    kind = type(tracker)
    described = tracker.describe() if callable(getattr(tracker, "describe", None)) else {}
    return {"class": f"{kind.__module__}.{kind.__qualname__}", **_jsonable(described)}


def _check_names(trackers: Mapping[str, object]) -> None:
    for name in trackers:
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"invalid tracker name {name!r}: it names a results folder")


def run_benchmark(trackers: Mapping[str, object], sequences: Iterable, out_dir: str | Path,
                  max_frames: int | None = None, *, workers: int = 1, threads: int = 0, force: bool = False,
                  shard: Shard | None = None, settings: Mapping | None = None) -> dict | None:
    """Run each named tracker (an object with init/update, or a :class:`TrackerSpec` built where it runs)
    over ``sequences`` into the report folder ``out_dir``; return the summary (None on a rank > 0).

    Resumable: each finished pair's results and record are kept in ``out_dir``; a rerun tracks only the
    pairs without a record. A report of other settings (code version, trackers, sequences, ``max_frames``,
    ``settings``) is a UsageError unless ``force`` (start over). ``workers`` > 1 tracks in that many
    spawned processes of ``threads`` torch threads each (1 when 0); ``shard`` (``Shard.from_env()`` under
    torchrun) tracks this rank's share and rank 0 merges once every rank is done.
    """
    sequences = list(sequences)
    out = Path(out_dir)
    check_out_dir(out)
    check_sequences(sequences)
    _check_names(trackers)
    described = {name: describe_tracker(tracker) for name, tracker in trackers.items()}
    wanted = run_settings(described, sequences, max_frames, settings)
    group = Group(shard) if shard is not None else None
    fresh = not out.exists() and (shard is None or shard.rank == 0)
    try:
        if group is None:
            prepare_report(out, wanted, force)
        else:
            group.first(lambda: prepare_report(out, wanted, force))
        pairs = [(name, tracker, seq) for name, tracker in trackers.items() for seq in sequences
                 if np.asarray(seq.valid).any()]
        # Each rank deals all pairs the same way, then skips its finished ones: no rank reads another's.
        mine = shard.share(pairs) if shard is not None else pairs
        mine = [p for p in mine if read_record(out, p[0], p[2].name) is None]
        _track(mine, out, max_frames, workers, threads, quiet=bool(shard and shard.rank))
        if group is not None:
            group.barrier()  # every rank's pairs are finished
            if shard.rank != 0:
                return None
        return summarize(out, list(trackers), sequences)
    except BaseException:
        if fresh:
            discard_unstarted(out)
        raise
    finally:
        if group is not None:
            group.close()


def _track(pairs: list[Pair], out: Path, max_frames: int | None, workers: int, threads: int,
           quiet: bool = False) -> None:
    """Track ``pairs`` with a progress bar (tracker, sequence and running AUC)."""
    aucs: list[float] = []

    with tqdm(total=len(pairs), desc="sequences", unit="seq", disable=True if quiet else None) as bar:
        def done(tracker: str, seq: str) -> None:
            record = read_record(out, tracker, seq)
            aucs.append(record["metrics"]["auc"] if record else float("nan"))
            bar.set_postfix(tracker=tracker, seq=seq, auc=f"{np.mean(aucs):.3f}")
            bar.update(1)

        run_pairs(pairs, out, max_frames, workers, threads, done)


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
    report = (out / "summary.json").is_file() or (out / SETTINGS).is_file()
    if out.is_dir() and any(p for p in out.iterdir() if not p.name.startswith(".")) and not report:
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
        "Run trackers over tracking sequences (OTB, VOT, UAV123, DTB70, LaSOT, GOT-10k layouts under one "
        "root) and write a report: summary.json (AUC, precision@20px, AO with 95% bootstrap intervals, "
        "SR0.50/0.75 per tracker and sequence, FPS of update(), OPs and budget), OTB-layout results/, "
        "success/precision PNG plots and a table. An interrupted run resumes: the same command again tracks "
        "only the unfinished pairs. Under torchrun each rank tracks its share and rank 0 merges."))
    p.add_argument("--tracker", action="append", required=True, metavar="SPEC",
                   help=f"tracker to run, repeatable: {SPEC_HELP}")
    p.add_argument("--data", metavar="ROOT", help="tracking data root (any supported layouts)")
    p.add_argument("--dataset", choices=DATASETS, metavar="NAME",
                   help=f"ROOT is this benchmark in its official layout: {', '.join(DATASETS)} (its "
                        "official sequence list where the benchmark ships one)")
    p.add_argument("--sample", action="store_true",
                   help="run on the built-in sample sequence too (alone without --data; tracker.sample)")
    p.add_argument("--split", metavar="FILE",
                   help="split file listing sequence folders relative to ROOT "
                        "(default: every sequence found)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR",
                   help="report directory: created, or resumed when it holds an unfinished run of the same "
                        "settings (another report there is refused: see --force)")
    p.add_argument("--force", action="store_true",
                   help="start over: remove the report in --out even when it was made with other settings")
    p.add_argument("--max-frames", type=positive_int, metavar="N",
                   help="track at most N frames of each sequence, counting the init frame (quick runs)")
    p.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=1, metavar="N",
                   help="track in N parallel processes of --threads torch threads each (1 when --threads is "
                        "0); default 1: in this process. Only the timings change")
    add_device_arg(p, default="cpu")
    add_threads_arg(p)
    p.add_argument("--kernels", choices=("packed", "float"), default="packed",
                   help="binary units bit-packed (XNOR-popcount, default) or float-simulated, to compare")
    return p


def benchmark_sequences(args: argparse.Namespace) -> tuple[list, dict]:
    """The sequences of --data (with --dataset or --split), plus the built-in sample with --sample; and what
    the report's settings record about where they came from."""
    if args.data is None and not args.sample:
        raise UsageError("give --data ROOT (tracking data) or --sample (the built-in sample sequence)")
    if args.split and args.data is None:
        raise UsageError("--split needs --data ROOT: its entries are relative to ROOT")
    if args.dataset and args.data is None:
        raise UsageError(f"--dataset {args.dataset} needs --data ROOT: the benchmark's folder")
    origin: dict = {}
    if args.dataset:
        sequences, origin = load_dataset(args.dataset, args.data, args.split)
    else:
        sequences = load_sequences(args.data, args.split) if args.data is not None else []
    if args.sample:
        from tracker.sample import load_sample  # lazy: builds (or checks) the cached sample only when asked

        sequences.append(load_sample())
    return sequences, origin


def _device(spec: str, shard: Shard | None) -> str:
    """--device, with a bare ``cuda`` meaning this rank's GPU (LOCAL_RANK) under torchrun."""
    if shard is not None and spec == "cuda":
        spec = f"cuda:{shard.local_rank}"
    return str(resolve_device(spec))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check trackers, sequences and --out, run or resume the benchmark, print the table."""
    args = build_parser().parse_args(argv)
    parsed = [parse_spec(s) for s in args.tracker]
    names = [n for n, _ in parsed]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UsageError(f"tracker name {duplicate!r} given twice: name them with NAME=PATH")
    checkpoints = [path for _, path in parsed if path]
    inputs = []
    if checkpoints:
        from backbones.checkpoint import checkpoint_files  # torch: only when there is a model to run

        inputs = [file for path in checkpoints for file in checkpoint_files(path)]
    check_out_dir(Path(args.out), inputs=[args.data, args.split, *inputs])
    sequences, origin = benchmark_sequences(args)
    check_sequences(sequences)
    apply_threads(args.threads)
    shard = Shard.from_env()
    device = _device(args.device, shard) if checkpoints else "cpu"
    trackers = {name: TrackerSpec(path, args.kernels, device) for name, path in parsed}
    summary = run_benchmark(trackers, sequences, args.out, args.max_frames, workers=args.workers,
                            threads=args.threads, force=args.force, shard=shard, settings=origin)
    if summary is not None:
        print(format_table(summary))
        print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
