"""Measure, and with ``--fit`` calibrate, a tracker's scale bias and its confidence / ``lost`` flag.

``python -m eval.calibrate --tracker CKPT [--tracker CKPT ...] --data ROOT --split FILE [--held-out] --out
REPORT.json``. Per tracker it reports, over the frames after the init frame:

- ``area_ratio_median``: the median of predicted over true box area (1 = no scale bias);
- ``failures``: runs of ``FAILURE_RUN`` or more consecutive annotated frames with IoU 0;
- ``lost``: how well ``lost`` flags a frame whose target is absent or has IoU 0 (detection rate) and how
  often it fires on the others (false-alarm rate), and the same for the old rule (sigmoid of the peak
  logit below 0.2).

``--held-out`` keeps only the split's held-out sequences (``tracker.sequences.split_held_out``:
every 8th by name, never trained on by ``tracker.train --hold-out``); fit there, never on val.
``--fit`` then also fits, pooled over the trackers: ``scale_bias`` (the mean ln scale the estimator
gives at the true size, on crops centred on the ground truth), the confidence's ``psr_center`` /
``psr_slope`` (logistic regression of "target kept" on the PSR) and ``loss_threshold`` (the confidence
that maximises detection rate minus false-alarm rate); the figures are then re-scored with them.
Each tracker runs with the ``TrackerConfig`` defaults updated by its sidecar's ``tracking`` settings
(``tracker.siamfc.calibrated_config``); ``--set KEY=VALUE`` overrides a field for every tracker (e.g.
``--set scale_estimate=argmax``: the siamfc-pytorch rule, for a before/after comparison).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from got10k.utils.metrics import rect_iou

from backbones.cli import (
    ArgumentParser,
    UsageError,
    add_threads_arg,
    apply_threads,
    atomic_path,
    atomic_write_text,
    check_output_file,
    code_version,
    positive_int,
    run_cli,
)
from eval.metrics import valid_boxes
from tracker.confidence import psr_confidence
from tracker.ops import EXEMPLAR_SIZE, INSTANCE_SIZE, box_center, crop_and_resize, exemplar_size
from tracker.sequences import Sequence, load_sequences, read_frame, split_held_out
from tracker.siamfc import SiamFCTracker, TrackerConfig, load_tracker

FAILURE_RUN = 10  # frames of IoU 0 in a row that count as one failure (a lost target)
OLD_THRESHOLD = 0.2  # the rule before calibration: sigmoid(peak logit) < 0.2
BIAS_EVERY = 12  # the scale bias is measured on every 12th annotated frame


# ---------------------------------------------------------------- per-frame outputs


def record_sequence(tracker: SiamFCTracker, seq: Sequence,
                    max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Track ``seq`` from its first annotated frame; per frame after it: box, PSR, peak logit, confidence,
    lost, and the ground truth."""
    first = int(np.argmax(np.asarray(seq.valid, dtype=bool)))
    end = len(seq.frames) if max_frames is None else min(len(seq.frames), first + max_frames)
    tracker.init(read_frame(seq.frames[first]), np.array(seq.boxes[first], dtype=float))
    rows = []
    for i in range(first + 1, end):
        box = tracker.update(read_frame(seq.frames[i]))
        rows.append((*box, tracker.psr, float(tracker.logits.max()), tracker.confidence, float(tracker.lost)))
    table = np.array(rows, dtype=np.float64).reshape(-1, 8)
    return {"boxes": table[:, :4], "psr": table[:, 4], "peak": table[:, 5], "confidence": table[:, 6],
            "lost": table[:, 7] > 0, "gt": np.asarray(seq.boxes, dtype=float)[first + 1:end]}


def frame_ious(boxes: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU per frame, annotated-frame mask); unannotated frames (target absent) get IoU 0."""
    valid = valid_boxes(gt)
    ious = np.zeros(len(gt))
    if valid.any():
        ious[valid] = np.nan_to_num(rect_iou(boxes[valid], gt[valid]), nan=0.0)
    return ious, valid


def count_failures(ious: np.ndarray, run: int = FAILURE_RUN) -> int:
    """Runs of at least ``run`` consecutive IoU-0 values (pass the annotated frames only)."""
    zero = np.concatenate([[0], (np.asarray(ious) <= 0).astype(np.int8), [0]])
    edges = np.diff(zero)
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((lengths >= run).sum())


def flag_rates(flags: np.ndarray, positive: np.ndarray) -> dict[str, float | int | None]:
    """Detection rate (flagged among positives) and false-alarm rate (flagged among negatives)."""
    flags, positive = np.asarray(flags, dtype=bool), np.asarray(positive, dtype=bool)
    pos, neg = int(positive.sum()), int((~positive).sum())
    return {"detection": float(flags[positive].mean()) if pos else None,
            "false_alarm": float(flags[~positive].mean()) if neg else None,
            "positives": pos, "negatives": neg}


# ---------------------------------------------------------------- fitting


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """1-D logistic regression P(y) = sigmoid(slope (x - center)) by Newton's method; (center, slope)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y.min() == y.max():
        raise UsageError("cannot fit the confidence: the held-out frames are all kept or all lost")
    design = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-design @ w))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        w = w + np.linalg.solve(hessian, design.T @ (y - p))
    return float(-w[1] / w[0]), float(w[0])


def best_threshold(confidence: np.ndarray, positive: np.ndarray) -> float:
    """The ``lost`` threshold (lost = confidence < t) maximising detection rate minus false-alarm rate."""
    candidates = np.unique(np.round(confidence, 4))
    scores = [(_youden(confidence < t, positive), t) for t in candidates]
    return float(max(scores)[1])


def _youden(flags: np.ndarray, positive: np.ndarray) -> float:
    rates = flag_rates(flags, positive)
    return (rates["detection"] or 0.0) - (rates["false_alarm"] or 0.0)


def scale_bias(tracker: SiamFCTracker, sequences: list[Sequence], every: int = BIAS_EVERY) -> list[float]:
    """ln of the scale change the estimator asks for (no damping, no bias) on search crops centred on the
    ground truth at its true size, template from the first frame: one value per sampled frame."""
    cfg = tracker.cfg
    tracker.cfg = dataclasses.replace(cfg, scale_lr=1.0, scale_bias=0.0, scale_estimate="parabolic")
    out = []
    try:
        for seq in sequences:
            frames = np.flatnonzero(np.asarray(seq.valid, dtype=bool))
            tracker.init(read_frame(seq.frames[frames[0]]), np.array(seq.boxes[frames[0]], dtype=float))
            for i in frames[1::every]:
                out.append(float(np.log(_true_size_change(tracker, read_frame(seq.frames[i]), seq.boxes[i]))))
    finally:
        tracker.cfg = cfg
    return out


@torch.no_grad()
def _true_size_change(tracker: SiamFCTracker, frame: np.ndarray, box: np.ndarray) -> float:
    x_size = exemplar_size(box[2:]) * INSTANCE_SIZE / EXEMPLAR_SIZE
    patches = [crop_and_resize(frame, box_center(box), x_size * f, INSTANCE_SIZE, tracker.avg_color)
               for f in tracker.scale_factors]
    logits = tracker.model.head(tracker.kernel, tracker.embed(tracker._input(patches))).squeeze(1)
    peaks = [cv2.resize(r, (tracker.upscale, tracker.upscale), interpolation=cv2.INTER_CUBIC).max()
             for r in logits.float().cpu().numpy()]
    return tracker._parabolic_scale(np.array(peaks))[1]


# ---------------------------------------------------------------- report


def score_tracker(runs: dict[str, dict], cfg: TrackerConfig) -> dict:
    """The figures of one tracker's runs, the confidence re-computed from the PSR with ``cfg``."""
    ratios, psr, peak, positive, failures, per_seq = [], [], [], [], 0, {}
    for name, run in runs.items():
        ious, valid = frame_ious(run["boxes"], run["gt"])
        area = run["boxes"][:, 2] * run["boxes"][:, 3] / (run["gt"][:, 2] * run["gt"][:, 3])
        seq_failures = count_failures(ious[valid])
        per_seq[name] = {"frames": len(ious), "area_ratio_median": _median(area[valid]),
                         "failures": seq_failures}
        ratios.append(area[valid])
        psr.append(run["psr"])
        peak.append(run["peak"])
        positive.append(~valid | (ious <= 0))
        failures += seq_failures
    psr, peak, positive = (np.concatenate(v) for v in (psr, peak, positive))
    lost = psr_confidence(psr, cfg.psr_center, cfg.psr_slope) < cfg.loss_threshold
    return {"frames": len(psr), "area_ratio_median": _median(np.concatenate(ratios)), "failures": failures,
            "lost": flag_rates(lost, positive),
            "lost_old_rule": flag_rates(1 / (1 + np.exp(-peak)) < OLD_THRESHOLD, positive),
            "sequences": per_seq}


def write_frames(path: str | Path, runs: dict[str, dict[str, dict]]) -> None:
    """The per-frame outputs as one .npz: key ``TRACKER/SEQUENCE/FIELD``."""
    arrays = {f"{t}/{s}/{k}": v
              for t, seqs in runs.items() for s, run in seqs.items() for k, v in run.items()}
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None


def fit_settings(runs: dict[str, dict[str, dict]], biases: list[float]) -> dict[str, float]:
    """Scale bias, PSR centre / slope and lost threshold from pooled held-out runs (see the module doc)."""
    psr, kept = [], []
    for tracker_runs in runs.values():
        for run in tracker_runs.values():
            ious, valid = frame_ious(run["boxes"], run["gt"])
            psr.append(run["psr"])
            kept.append(valid & (ious > 0))
    psr, kept = np.concatenate(psr), np.concatenate(kept)
    center, slope = fit_logistic(psr, kept)
    threshold = best_threshold(psr_confidence(psr, center, slope), ~kept)
    return {"scale_bias": float(np.mean(biases)), "psr_center": center, "psr_slope": slope,
            "loss_threshold": threshold}


def format_table(report: dict) -> str:
    """One row per tracker: frames, median area ratio, failures, lost detection / false alarms."""
    head = (f"{'tracker':<16} {'frames':>7} {'area ratio':>10} {'failures':>8} {'lost det':>8} "
            f"{'false al':>8} {'old det':>8} {'old fa':>8}")
    lines = [head, "-" * len(head)]
    for name, t in report["trackers"].items():
        lost, old = t["lost"], t["lost_old_rule"]
        lines.append(f"{name:<16} {t['frames']:7d} {_f(t['area_ratio_median'])} {t['failures']:8d} "
                     f"{_f(lost['detection'])[2:]} {_f(lost['false_alarm'])[2:]} "
                     f"{_f(old['detection'])[2:]} {_f(old['false_alarm'])[2:]}")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return f"{'-':>10}" if value is None else f"{value:10.3f}"


# ---------------------------------------------------------------- CLI


def parse_setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for a TrackerConfig field, the value cast to the field's type."""
    key, sep, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(TrackerConfig)}
    if not sep or key not in fields:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, KEY one of {', '.join(fields)}; got {text!r}")
    kind = type(getattr(TrackerConfig(), key))
    if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise argparse.ArgumentTypeError(f"{key} takes true or false, got {value!r}")
        return key, value.lower() in ("true", "1")
    try:
        return key, kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key} takes a {kind.__name__}, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m eval.calibrate``."""
    p = ArgumentParser(prog="python -m eval.calibrate", description=(
        "Measure trackers' scale bias (median predicted / true box area), failures (10+ frames at IoU 0) "
        "and how well `lost` flags frames whose target is absent or missed; with --fit, also fit the "
        "scale bias, the confidence and the lost threshold (on held-out train sequences, never val)."))
    p.add_argument("--tracker", action="append", required=True, metavar="CKPT",
                   help="tracker checkpoint (.safetensors), repeatable")
    p.add_argument("--data", required=True, metavar="ROOT", help="tracking data root")
    p.add_argument("--split", required=True, metavar="FILE", help="split file of sequence folders under ROOT")
    p.add_argument("--held-out", action="store_true",
                   help="keep only the split's held-out sequences (every 8th by name, as tracker.train --hold-out)")
    p.add_argument("--fit", action="store_true", help="fit scale_bias, psr_center/slope, loss_threshold")
    p.add_argument("--set", action="append", type=parse_setting, default=[], metavar="KEY=VALUE",
                   help="override a TrackerConfig field, repeatable (e.g. scale_estimate=argmax)")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="at most N frames per sequence")
    p.add_argument("--out", required=True, metavar="REPORT.json", help="the report to write (JSON)")
    p.add_argument("--frames-out", metavar="FILE.npz",
                   help="also write per-frame outputs (TRACKER/SEQ/FIELD arrays): re-score without tracking")
    add_threads_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Track, score, optionally fit, and write the report."""
    args = build_parser().parse_args(argv)
    for path in args.tracker:
        if not Path(path).is_file():
            raise UsageError(f"tracker checkpoint not found: {path}")
    inputs = [args.data, args.split, *args.tracker]
    check_output_file(args.out, "--out", inputs=inputs)
    if args.frames_out:
        check_output_file(args.frames_out, "--frames-out", inputs=[*inputs, args.out])
    sequences = load_sequences(args.data, args.split)
    if args.held_out:
        sequences = split_held_out(sequences)[0]
    apply_threads(args.threads)
    runs, biases, configs = {}, [], {}
    for path in args.tracker:
        tracker = load_tracker(path)  # the defaults and the sidecar's calibrated settings, then --set
        tracker.cfg = dataclasses.replace(tracker.cfg, **dict(args.set))
        configs[tracker.name] = tracker.cfg
        runs[tracker.name] = {seq.name: record_sequence(tracker, seq, args.max_frames) for seq in sequences}
        if args.fit:
            biases += scale_bias(tracker, sequences)
    report: dict = {"code_version": code_version(), "sequences": [s.name for s in sequences],
                    "max_frames": args.max_frames,
                    "configs": {name: dataclasses.asdict(cfg) for name, cfg in configs.items()}}
    if args.fit:
        report["fitted"] = fit_settings(runs, biases)
        fitted = {k: v for k, v in report["fitted"].items() if k != "scale_bias"}
        configs = {name: dataclasses.replace(cfg, **fitted) for name, cfg in configs.items()}
    report["trackers"] = {name: score_tracker(r, configs[name]) for name, r in runs.items()}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    if args.frames_out:
        write_frames(args.frames_out, runs)
    print(format_table(report))
    if args.fit:
        print("fitted: " + ", ".join(f"{k}={v:.4g}" for k, v in report["fitted"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
