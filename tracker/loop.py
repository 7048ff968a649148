"""The one training loop: SiamFC training (``tracker.train``) and every fine-tuning (``mixbin.finetune``).

``train_step`` takes one optimizer step from a loss, refusing a NaN or infinite loss before it touches the
weights; ``train_over`` runs iterations ``start`` to ``stop`` over a batch iterator with a learning-rate
scheduler, and calls ``after(iteration, loss)`` at each iteration boundary (where a caller saves, or stops).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from tqdm import tqdm

from backbones.cli import UsageError


class DivergedError(UsageError):
    """The loss became NaN or infinite: training stops, with one line, before the weights are updated."""


def train_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, iteration: int) -> float:
    """One optimizer step on ``loss`` (the step of 0-based ``iteration``); returns the loss value."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise DivergedError(f"the training loss became {value} at iteration {iteration + 1}; "
                            "try a lower --lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


def train_over(batches: Iterator[Any], loss_fn: Callable[[Any], torch.Tensor],
               optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               start: int, stop: int,
               after: Callable[[int, float], bool] | None = None, desc: str = "train", show: bool = True,
               leave: bool = True) -> tuple[int, float]:
    """Iterations ``start``..``stop``: loss, step, scheduler step, then ``after(done, loss)`` (True stops).

    Returns (iterations done, last loss; nan when none ran).
    """
    iteration, last, smooth = start, float("nan"), None
    bar = tqdm(total=stop, initial=start, desc=desc, unit="it", dynamic_ncols=True, leave=leave,
               disable=not show, file=sys.stderr)
    try:
        while iteration < stop:
            last = train_step(optimizer, loss_fn(next(batches)), iteration)
            scheduler.step()
            iteration += 1
            smooth = last if smooth is None else 0.9 * smooth + 0.1 * last
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}")
            if after is not None and after(iteration, last):
                break
    finally:
        bar.close()
    return iteration, last
