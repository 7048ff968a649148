"""MixBin's baselines (docs/design.md section 4), same budget, mask format and fine-tuning as the search.

random / first / last: greedy fills in a seeded random / forward / backward order (a unit that does not
fit is skipped and the scan goes on). iterative: from all-FP, repeatedly binarize the unit whose
binarization raises the held-out loss least per OPs saved until the budget is met. sensitivity: each
unit's held-out loss increase when binarized alone, then MixBin's exact knapsack keeps the FP set with
the largest total increase. prune: an all-FP network at the largest uniformly narrower width whose OPs
fit the budget (relative to the full width's FP OPs), started from the leading channels of --init-from.

Held-out losses use each batch norm's statistics of the held-out batch itself (nothing is updated): the
FP checkpoint's binary-path batch norms were never trained, and their running statistics would make
every binarization look catastrophic.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import random
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from backbones.checkpoint import load_sliced_weights
from backbones.cli import ArgumentParser, UsageError, run_cli
from backbones.cost import BINARY_OPS_PER_MAC, UnitCosts, reference_costs
from backbones.mask import Mask
from backbones.registry import build_backbone
from mixbin.common import (
    add_mask_output_args,
    add_task_args,
    build_task,
    check_mask_args,
    finish,
    initial_model,
)
from mixbin.provenance import command_line, seed_everything
from mixbin.select import fits, greedy_fill, select_fp, states_for, unused_budget
from mixbin.task import Task

PROG = "python -m mixbin.baseline"
METHODS = ("random", "first", "last", "iterative", "sensitivity", "prune")
NEEDS_CHECKPOINT = ("iterative", "sensitivity")


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in inference mode except that batch norms normalise with the batch's own statistics;
    every buffer is restored afterwards."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [{k: v.clone() for k, v in m.named_buffers()} for m in norms]
    was_training = model.training
    model.eval()
    for m in norms:
        m.train()
    try:
        yield
    finally:
        for m, buffers in zip(norms, saved, strict=True):
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
        model.train(was_training)


@torch.no_grad()
def heldout_loss(task: Task, model: nn.Module, states: dict[str, str]) -> float:
    """The task loss on the held-out batch with ``states`` applied (batch-statistics batch norm)."""
    model.backbone.set_mask(states)
    with batch_statistics(model):
        return float(task.loss(model, task.heldout_batch()))


def saved_ops(costs: UnitCosts, name: str) -> float:
    """OPs saved by binarizing one unit."""
    return costs.unit_macs[name] * (1 - BINARY_OPS_PER_MAC)


def random_mask(costs: UnitCosts, target: float, seed: int) -> dict[str, str]:
    """Greedy fill in a seeded random order."""
    order = list(costs.unit_macs)
    random.Random(seed).shuffle(order)
    return greedy_fill(order, costs, target)


def first_mask(costs: UnitCosts, target: float) -> dict[str, str]:
    """Greedy fill from the first unit on: keep the earliest units FP."""
    return greedy_fill(list(costs.unit_macs), costs, target)


def last_mask(costs: UnitCosts, target: float) -> dict[str, str]:
    """Greedy fill from the last unit back: keep the latest units FP."""
    return greedy_fill(list(costs.unit_macs)[::-1], costs, target)


def iterative_mask(task: Task, model: nn.Module, costs: UnitCosts, target: float
                   ) -> tuple[dict[str, str], list]:
    """Binarize, one at a time, the unit with the least held-out loss increase per OPs saved until it fits.

    Returns the states and the trace [(unit, loss increase per GOPs saved), ...]; ties go to the earlier unit.
    """
    names = list(costs.unit_macs)
    fp = list(names)
    current = heldout_loss(task, model, states_for(fp, names))
    trace = []
    while not fits(fp, costs, target):
        best = None
        for name in fp:
            loss = heldout_loss(task, model, states_for([n for n in fp if n != name], names))
            rate = (loss - current) / saved_ops(costs, name)
            if best is None or rate < best[0]:
                best = (rate, name, loss)
        rate, name, current = best
        fp.remove(name)
        trace.append((name, rate * 1e9))
    return states_for(fp, names), trace


def sensitivity_mask(task: Task, model: nn.Module, costs: UnitCosts, target: float
                     ) -> tuple[dict[str, str], dict[str, float]]:
    """One-shot: each unit's loss increase when binarized alone, then the exact knapsack with those raw
    increases as values and the units' OPs as weights (no ratio, which would count the cost twice).

    Returns the states and each unit's raw increase (scaled to max |increase| = 1 only to fit the knapsack's
    score range, which changes no choice).
    """
    names = list(costs.unit_macs)
    base = heldout_loss(task, model, states_for(names, names))
    delta = {n: heldout_loss(task, model, states_for([m for m in names if m != n], names)) - base
             for n in names}
    scale = max(abs(v) for v in delta.values()) or 1.0
    scores = {n: v / scale for n, v in delta.items()}
    return select_fp(scores, costs, target), delta


def fp_ops_at(backbone: str, width: float) -> float:
    return reference_costs(backbone, width).fp_ops


def prune_width(backbone: str, width: float, target: float, steps: int = 24) -> tuple[float, float]:
    """Largest width (4 decimals) <= ``width`` whose all-FP OPs are <= target x the all-FP OPs at ``width``.

    Channel counts are monotone in the width, so bisection finds it. Returns (width, achieved ratio).
    """
    reference = fp_ops_at(backbone, width)
    lo, hi = 1e-4, width
    if fp_ops_at(backbone, lo) / reference > target:
        raise UsageError(f"pruning cannot reach budget {target:g}: the narrowest {backbone} costs "
                         f"{fp_ops_at(backbone, lo) / reference:.4f} of width {width:g}")
    if target >= 1.0:
        return width, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fp_ops_at(backbone, mid) / reference <= target:
            lo = mid
        else:
            hi = mid
    pruned = max(math.floor(lo * 1e4) / 1e4, 1e-4)
    return pruned, fp_ops_at(backbone, pruned) / reference


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="MixBin's baselines at the same budget, with the same mask format and the same "
                    "fine-tuning as mixbin.search: greedy fills (random, first, last), iterative and "
                    "sensitivity (need the FP checkpoint --init-from), and structured pruning (prune).")
    parser.add_argument("--method", required=True, choices=METHODS,
                        help="random: seeded random-order greedy fill; first/last: keep the earliest/latest "
                             "units FP; iterative: binarize the least harmful unit per OPs saved until the "
                             "budget is met; sensitivity: one-shot loss increases + exact knapsack; prune: "
                             "an all-FP network at a uniformly narrower width with the same OPs")
    add_task_args(parser)
    add_mask_output_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    costs = check_mask_args(args, same_width=args.method != "prune")
    if args.method in NEEDS_CHECKPOINT and args.init_from is None:
        raise UsageError(f"--method {args.method} measures losses of the FP network: give --init-from CKPT")
    task = build_task(args)
    names = list(costs.unit_macs)
    extra: dict[str, Any] = {}
    seed_everything(args.seed)  # the same starting weights as mixbin.search with this seed
    if args.method == "prune":
        width, ratio = prune_width(args.backbone, args.width, args.budget)
        mask = Mask(args.backbone, width, {n: "fp" for n in build_backbone(args.backbone, width).units()})
        model = task.make_model(mask)
        if args.init_from is not None:
            load_sliced_weights(model, args.init_from)
        extra = {"reference_width": args.width, "pruned_width": width, "budget_target": args.budget,
                 "budget_vs_reference": round(ratio, 6)}
    else:
        model = initial_model(task, Mask(args.backbone, args.width, {n: "fp" for n in names}), args.init_from)
        if args.method == "random":
            states = random_mask(costs, args.budget, args.seed)
        elif args.method == "first":
            states = first_mask(costs, args.budget)
        elif args.method == "last":
            states = last_mask(costs, args.budget)
        elif args.method == "iterative":
            states, trace = iterative_mask(task, model, costs, args.budget)
            extra = {"binarized_order": [n for n, _ in trace],
                     "loss_increase_per_gops": {n: r for n, r in trace}}
        else:
            states, delta = sensitivity_mask(task, model, costs, args.budget)
            extra = {"loss_increase": delta}
        extra["budget_unused"] = unused_budget(states, costs, args.budget)
        mask = Mask(args.backbone, args.width, states, {"target": args.budget})
    provenance = {"method": args.method, "command": command_line("mixbin.baseline", argv), **extra}
    saved = finish(task, model, mask, args, provenance, started)
    fp = [n for n, s in saved.units.items() if s == "fp"]
    print(f"wrote {args.out}: {args.method} {saved.backbone} width {saved.width:g}, budget "
          f"{saved.budget['achieved']:.4f}, FP units {', '.join(fp) or 'none'}; "
          f"metrics {saved.search['metrics']}"
          + (f"; budget unused {extra['budget_unused']:.4f}" if "budget_unused" in extra else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
