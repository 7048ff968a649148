"""CLI plumbing shared by ``mixbin.search``, ``mixbin.baseline`` and ``mixbin.train``: the common options,
task and budget checks, and the final fine-tune-evaluate-write step that every mask source goes through.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from torch import nn

from backbones.checkpoint import checkpoint_files, load_weights, read_checkpoint, save_checkpoint
from backbones.cli import (
    UsageError,
    add_device_arg,
    add_seed_arg,
    add_threads_arg,
    add_workers_arg,
    apply_threads,
    check_output_file,
    code_version,
    finite_float,
    float_range,
    int_range,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_device,
)
from backbones.cost import UnitCosts, reference_costs
from backbones.mask import Mask, save_mask, with_budget
from backbones.registry import list_backbones
from mixbin.finetune import DEFAULT_FINETUNE_ITERATIONS, DEFAULT_LR, finetune
from mixbin.select import check_reachable
from mixbin.task import TASKS, Task, make_task

# Far beyond any useful network, short of sizes that would try to allocate terabytes.
MAX_WIDTH = 4.0
MAX_INPUT_SIZE = 512
MAX_BATCH_SIZE = 1024
MAX_EPOCHS = 1e6


def add_task_args(parser: argparse.ArgumentParser, task_choice: bool = True,
                  backbone_required: bool = True) -> None:
    """Options naming the data, backbone, device and seed."""
    if task_choice:
        parser.add_argument("--task", choices=TASKS, default="classification",
                            help="what the mask is searched / the network fine-tuned on "
                                 "(default classification)")
    parser.add_argument("--data", required=True, metavar="ROOT",
                        help="dataset root; classification: an ImageFolder root with train/ and test/ "
                             "(or val/)")
    parser.add_argument("--backbone", required=backbone_required, metavar="NAME",
                        help=f"backbone: {', '.join(list_backbones())}")
    parser.add_argument("--width", type=float_range(0, MAX_WIDTH, low_open=True), default=None, metavar="W",
                        help=f"width multiplier in (0, {MAX_WIDTH:g}] (default 1.0)")
    parser.add_argument("--input-size", type=int_range(1, MAX_INPUT_SIZE), default=96, metavar="PX",
                        help="classification input size in pixels (default 96; CIFAR-10's 32x32 upsampled)")
    parser.add_argument("--batch-size", type=int_range(1, MAX_BATCH_SIZE), default=64, metavar="N",
                        help=f"training batch size, at most {MAX_BATCH_SIZE} (default 64)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="use only N images per split (a seeded subset), for quick runs")
    add_workers_arg(parser)
    add_device_arg(parser)
    add_seed_arg(parser)
    add_threads_arg(parser)


def add_length_args(parser: argparse.ArgumentParser, what: str, default_epochs: float) -> None:
    """--epochs E | --iterations N."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=float_range(0, MAX_EPOCHS), default=None, metavar="E",
                       help=f"{what} length in epochs of the training split (default {default_epochs:g})")
    group.add_argument("--iterations", type=nonnegative_int, default=None, metavar="N",
                       help=f"{what} length in iterations")


def add_mask_output_args(parser: argparse.ArgumentParser) -> None:
    """Budget, starting checkpoint, fine-tuning and outputs of a mask source."""
    parser.add_argument("--budget", type=finite_float, required=True, metavar="B",
                        help="fraction of the all-FP OPs allowed (at the 255x255 reference input), "
                             "between the all-binary budget and 1")
    parser.add_argument("--init-from", metavar="CKPT", default=None,
                        help="start from this .safetensors checkpoint (e.g. an FP mixbin.train run)")
    parser.add_argument("--finetune-iterations", type=nonnegative_int, default=DEFAULT_FINETUNE_ITERATIONS,
                        metavar="N",
                        help="fine-tuning steps with the chosen mask fixed; the same for every mask source "
                             f"(default {DEFAULT_FINETUNE_ITERATIONS}; 0 skips fine-tuning)")
    add_lr_arg(parser)
    parser.add_argument("--out", required=True, metavar="MASK.json", help="mask file to write")
    parser.add_argument("--weights-out", default=None, metavar="CKPT",
                        help="where to write the fine-tuned weights (default: next to --out, "
                             "NAME.weights.safetensors + NAME.weights.json)")


def add_lr_arg(parser: argparse.ArgumentParser) -> None:
    """--lr: the Adam learning rate of training and fine-tuning."""
    parser.add_argument("--lr", type=positive_float, default=DEFAULT_LR, metavar="LR",
                        help=f"Adam learning rate (default {DEFAULT_LR:g})")


def check_init_from(path: str | None, backbone: str, width: float, same_width: bool = True) -> None:
    """Before any work: --init-from is a checkpoint of ``backbone`` at ``width`` (or, when not
    ``same_width``, at least as wide: pruning slices it). One line otherwise."""
    if path is None:
        return
    sidecar = read_checkpoint(path).sidecar
    name, found = sidecar.get("backbone"), sidecar.get("width")
    if not isinstance(found, (int, float)) or name != backbone:
        raise UsageError(f"--init-from {path}: is a checkpoint of {name} width {found}, not of {backbone}")
    if (same_width and not math.isclose(found, width, rel_tol=1e-9)) or found < width - 1e-9:
        need = f"width {width:g}" if same_width else f"width >= {width:g}"
        raise UsageError(f"--init-from {path}: is a checkpoint of {name} width {found:g}; this run needs "
                         f"{backbone} {need}")


def check_budget(costs: UnitCosts, target: float, backbone: str, width: float) -> None:
    """UsageError stating the reachable range [min_budget, 1] when ``target`` is outside it."""
    try:
        check_reachable(costs, target)
    except ValueError:
        raise UsageError(f"--budget {target:g} is outside the reachable range [{costs.min_budget:.4f}, 1] "
                         f"for {backbone} width {width:g}") from None


def check_mask_args(args: argparse.Namespace, same_width: bool = True) -> UnitCosts:
    """The checks every mask source makes before any work: width default, outputs, backbone, budget and
    the --init-from checkpoint."""
    args.width = 1.0 if args.width is None else args.width
    check_outputs(args)
    costs = reference_costs(args.backbone, args.width)
    check_budget(costs, args.budget, args.backbone, args.width)
    check_init_from(args.init_from, args.backbone, args.width, same_width)
    return costs


def check_outputs(args: argparse.Namespace) -> None:
    """Fail early (before any training) on a bad --out or --weights-out: wrong suffix, not writable, one
    of the run's inputs (--init-from and its sidecar, --data), or the same file as the other output."""
    if not args.out.endswith(".json"):
        raise UsageError(f"--out must name a .json mask file, got {args.out}")
    if args.weights_out is not None and not args.weights_out.endswith(".safetensors"):
        raise UsageError(f"--weights-out must name a .safetensors file, got {args.weights_out}")
    inputs = [*checkpoint_files(args.init_from), args.data]
    weights = weights_path(args.out, args.weights_out)
    check_output_file(args.out, "--out", inputs=inputs)
    for path in checkpoint_files(weights):
        check_output_file(path, "--weights-out", inputs=[*inputs, args.out])


def weights_path(out: str, weights_out: str | None) -> Path:
    """--weights-out, or NAME.weights.safetensors beside NAME.json (its sidecar is NAME.weights.json)."""
    if weights_out is not None:
        return Path(weights_out)
    return Path(out).with_suffix(".weights.safetensors")


def build_task(args: argparse.Namespace) -> Task:
    """The task the parsed options describe (also applies --threads)."""
    apply_threads(args.threads)
    return make_task(getattr(args, "task", "classification"), data_root=args.data, backbone=args.backbone,
                     width=args.width, input_size=args.input_size, batch_size=args.batch_size,
                     device=resolve_device(args.device), seed=args.seed, limit=args.limit,
                     workers=args.workers)


def initial_model(task: Task, mask: Mask, init_from: str | None) -> nn.Module:
    """The task's model with ``mask``, loaded from ``init_from`` when given."""
    model = task.make_model(mask)
    if init_from is not None:
        load_weights(model, init_from)
    return model


def finish(task: Task, model: nn.Module, mask: Mask, args: argparse.Namespace, search: dict[str, Any],
           started: float) -> Mask:
    """Fix the mask, fine-tune (same steps and seed for every source), evaluate, write weights then mask."""
    model.backbone.set_mask(mask.units)
    finetune(task, model, args.finetune_iterations, args.lr, args.seed)
    metrics = task.evaluate(model)
    weights = weights_path(args.out, args.weights_out)
    provenance = {**search, **task.describe(), "seed": args.seed, "init_from": args.init_from,
                  "finetune_iterations": args.finetune_iterations, "lr": args.lr, "metrics": metrics,
                  "weights": str(weights), "code_version": code_version(),
                  "wall_time_s": round(time.perf_counter() - started, 2)}
    mask = with_budget(Mask(mask.backbone, mask.width, mask.units, mask.budget, provenance))
    meta = {key: provenance.get(key) for key in ("method", "task", "data", "data_root", "images", "seed",
                                             "command", "code_version", "metrics", "init_from")}
    meta["settings"] = {"input_size": provenance.get("input_size"),
                        "batch_size": provenance.get("batch_size"),
                        "finetune_iterations": args.finetune_iterations, "lr": args.lr}
    save_checkpoint(weights, model, mask, meta)
    return save_mask(mask, args.out)
