"""CLI plumbing shared by ``mixbin.search``, ``mixbin.baseline`` and ``mixbin.train``: the common options,
task and budget checks, and the final fine-tune-evaluate-write step that every mask source goes through.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.checkpoint import load_weights, save_checkpoint
from backbones.cli import UsageError, code_version
from backbones.cost import UnitCosts, reference_costs
from backbones.mask import Mask, save_mask, with_budget
from backbones.registry import list_backbones
from mixbin.finetune import DEFAULT_FINETUNE_ITERATIONS, DEFAULT_LR, finetune
from mixbin.select import check_reachable
from mixbin.task import TASKS, Task, make_task


def add_task_args(parser: argparse.ArgumentParser, task_choice: bool = True, backbone_required: bool = True) -> None:
    """Options naming the data, backbone, device and seed."""
    if task_choice:
        parser.add_argument("--task", choices=TASKS, default="classification",
                            help="what the mask is searched / the network fine-tuned on (default classification)")
    parser.add_argument("--data", required=True, metavar="ROOT",
                        help="dataset root; classification: an ImageFolder root with train/ and test/ (or val/)")
    parser.add_argument("--backbone", required=backbone_required, metavar="NAME",
                        help=f"backbone: {', '.join(list_backbones())}")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default 1.0)")
    parser.add_argument("--input-size", type=int, default=96,
                        help="classification input size in pixels (default 96; CIFAR-10's 32x32 upsampled)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only N images per split (a seeded subset), for quick runs")
    parser.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto = cuda when available, else cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice; 1 is steadier on a busy machine)")


def add_length_args(parser: argparse.ArgumentParser, what: str, default_epochs: float) -> None:
    """--epochs E | --iterations N."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=float, default=None,
                       help=f"{what} length in epochs of the training split (default {default_epochs:g})")
    group.add_argument("--iterations", type=int, default=None, help=f"{what} length in iterations")


def add_mask_output_args(parser: argparse.ArgumentParser) -> None:
    """Budget, starting checkpoint, fine-tuning and outputs of a mask source."""
    parser.add_argument("--budget", type=float, required=True,
                        help="fraction of the all-FP OPs allowed (at the 255x255 reference input), "
                             "between the all-binary budget and 1")
    parser.add_argument("--init-from", metavar="CKPT", default=None,
                        help="start from this .safetensors checkpoint (e.g. an FP mixbin.train run)")
    parser.add_argument("--finetune-iterations", type=int, default=DEFAULT_FINETUNE_ITERATIONS, metavar="N",
                        help="fine-tuning steps with the chosen mask fixed; the same for every mask source "
                             f"(default {DEFAULT_FINETUNE_ITERATIONS}; 0 skips fine-tuning)")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate (default {DEFAULT_LR:g})")
    parser.add_argument("--out", required=True, metavar="MASK.json", help="mask file to write")
    parser.add_argument("--weights-out", default=None, metavar="CKPT",
                        help="where to write the fine-tuned weights (default: next to --out, "
                             "NAME.weights.safetensors + NAME.weights.json)")


def resolve_device(spec: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a usage error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(spec)


def check_budget(costs: UnitCosts, target: float, backbone: str, width: float) -> None:
    """UsageError stating the reachable range [min_budget, 1] when ``target`` is outside it."""
    try:
        check_reachable(costs, target)
    except ValueError:
        raise UsageError(f"--budget {target:g} is outside the reachable range [{costs.min_budget:.4f}, 1] "
                         f"for {backbone} width {width:g}") from None


def check_mask_args(args: argparse.Namespace) -> UnitCosts:
    """The checks every mask source makes before any work: width default, outputs, backbone, budget."""
    args.width = 1.0 if args.width is None else args.width
    check_outputs(args)
    costs = reference_costs(args.backbone, args.width)
    check_budget(costs, args.budget, args.backbone, args.width)
    return costs


def check_outputs(args: argparse.Namespace) -> None:
    """Fail early (before any training) on a bad --out, --weights-out or --finetune-iterations."""
    if not args.out.endswith(".json"):
        raise UsageError(f"--out must name a .json mask file, got {args.out}")
    if args.weights_out is not None and not args.weights_out.endswith(".safetensors"):
        raise UsageError(f"--weights-out must name a .safetensors file, got {args.weights_out}")
    if args.finetune_iterations < 0:
        raise UsageError(f"--finetune-iterations must be >= 0, got {args.finetune_iterations}")


def weights_path(out: str, weights_out: str | None) -> Path:
    """--weights-out, or NAME.weights.safetensors beside NAME.json (its sidecar is NAME.weights.json)."""
    if weights_out is not None:
        return Path(weights_out)
    return Path(out).with_suffix(".weights.safetensors")


def build_task(args: argparse.Namespace) -> Task:
    """The task the parsed options describe (also applies --threads)."""
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return make_task(getattr(args, "task", "classification"), data_root=args.data, backbone=args.backbone,
                     width=args.width, input_size=args.input_size, batch_size=args.batch_size,
                     device=resolve_device(args.device), seed=args.seed, limit=args.limit, workers=args.workers)


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
    meta["settings"] = {"input_size": provenance.get("input_size"), "batch_size": provenance.get("batch_size"),
                        "finetune_iterations": args.finetune_iterations, "lr": args.lr}
    save_checkpoint(weights, model, mask, meta)
    return save_mask(mask, args.out)
