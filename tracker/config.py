"""SiamFC training settings: one dataclass, ``TrainConfig``, whose fields are ``tracker.train``'s options.

Each field's metadata gives its help text and argparse type (or the shared ``backbones.cli`` helper
that adds it), so ``--help`` lists every setting with its default, and nothing is set anywhere else.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from backbones.cli import (
    add_device_arg,
    add_seed_arg,
    add_threads_arg,
    add_workers_arg,
    positive_float,
    positive_int,
)
from backbones.registry import list_backbones
from tracker.loss import POSITIVE_RADIUS
from tracker.pairs import MAX_GAP

MAX_BATCH = 4096  # pairs per step and process; more would try to allocate far beyond any machine


def _bounded(kind: type, low: float, high: float, low_open: bool = False) -> Any:
    """argparse type: a ``kind`` number in [low, high] (or (low, high] when ``low_open``); never clamped."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _opt(default: Any, help_text: str, kind: Any = str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help_text, "type": kind, **extra})


def _required(help_text: str, kind: Any = str, **extra: Any) -> Any:
    return field(metadata={"help": help_text, "type": kind, "required": True, **extra})


def _shared(default: Any, adder: Any) -> Any:
    return field(default=default, metadata={"add": adder})


@dataclass
class TrainConfig:
    """Everything a SiamFC training run depends on (recorded in its checkpoints' sidecars)."""

    backbone: str = _required(f"backbone: {', '.join(list_backbones())}", choices=list_backbones())
    data: str = _required("root holding sequences (OTB, VOT, UAV123, DTB70, GOT-10k)", metavar="ROOT")
    iterations: int = _required("optimizer steps in all (with --resume: the run's total)", positive_int)
    out: str = _required("run folder for checkpoints", metavar="RUN")
    width: float = _opt(1.0, "width multiplier", _bounded(float, 0, 4, low_open=True))
    mask: str = _opt("fp", "fp, binary, or a mask JSON file for this backbone and width")
    split: str | None = _opt(None, "file listing sequence folders relative to --data (e.g. splits/train.txt)")
    hold_out: bool = _opt(False, "train without the held-out sequences (every 8th of the split by name, "
                                 "tracker.sequences.split_held_out) that MixBin's probes and the confidence "
                                 "calibration use", bool)
    batch_size: int = _opt(8, f"pairs per step and process (at most {MAX_BATCH})",
                           _bounded(int, 1, MAX_BATCH))
    init_from: str | None = _opt(None, "start from this checkpoint (.safetensors, tracker or classifier, "
                                       "or a siamfc-pytorch .pth for the FP alexnet)", metavar="CKPT")
    teacher: str | None = _opt(None, "FP tracker checkpoint whose response maps the student also learns",
                               metavar="CKPT")
    distill_weight: float = _opt(1.0, "weight of the distillation loss", _bounded(float, 0, 1e6))
    resume: bool = _opt(False, "continue RUN from its last complete checkpoint (same settings)", bool)
    lr: float = _opt(1e-2, "initial learning rate", positive_float)
    lr_end: float = _opt(1e-5, "final learning rate (exponential decay; at most --lr)", positive_float)
    weight_decay: float = _opt(5e-4, "L2 weight decay", _bounded(float, 0, 1))
    optimizer: str = _opt("sgd", "sgd (momentum, SiamFC's) or adam (ReActNet's choice for binary units)",
                          choices=["sgd", "adam"])
    momentum: float = _opt(0.9, "SGD momentum", _bounded(float, 0, 1))
    color_jitter: float = _opt(0.0, "per-channel gain jitter of the pairs (0 = off)", _bounded(float, 0, 1))
    flip: bool = _opt(False, "mirror both patches of a pair left-right, half the pairs", bool)
    gray: float = _opt(0.0, "fraction of pairs turned grayscale, both patches (0 = off)", _bounded(float, 0, 1))
    max_gap: int = _opt(MAX_GAP, "largest frame distance within a training pair", positive_int)
    positive_radius: float = _opt(POSITIVE_RADIUS, "label radius in search-image pixels",
                                  _bounded(float, 0, 1e4))
    save_every: int = _opt(100, "checkpoint every K iterations (and at the end)", positive_int)
    device: str = _shared("auto", add_device_arg)
    seed: int = _shared(0, add_seed_arg)
    workers: int = _shared(2, add_workers_arg)
    threads: int = _shared(0, add_threads_arg)


# Settings a resumed run must share with the run it continues (the rest may change between sessions).
RUN_DEFINING = ("backbone", "width", "mask", "data", "split", "hold_out", "batch_size", "init_from",
                "teacher", "distill_weight", "lr", "lr_end", "weight_decay", "optimizer", "momentum", "color_jitter",
                "flip", "gray", "max_gap", "positive_radius", "seed")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field, with its help text and default."""
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        if "add" in meta:
            adder = meta["add"]
            adder(parser) if adder is add_threads_arg else adder(parser, default=f.default)
            continue
        flag = "--" + f.name.replace("_", "-")
        kind, help_text = meta.pop("type"), meta.pop("help")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        if not meta.get("required") and f.default is not None:
            help_text += f" (default {f.default})"
        parser.add_argument(flag, type=kind, default=None if meta.get("required") else f.default,
                            help=help_text, **meta)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed options."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
