"""The one training loop every mask source shares: fixed mask, Adam, cosine learning-rate decay, seeded.

``mixbin.train`` (pre-training / fine-tuning), ``mixbin.search`` and ``mixbin.baseline`` all fine-tune
through ``finetune`` so that only the mask differs between mask sources (same steps, same seed, same data).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from tqdm import tqdm

from mixbin.provenance import seed_everything
from mixbin.task import Task

DEFAULT_FINETUNE_ITERATIONS = 1000
DEFAULT_LR = 1e-3


def cosine(base: float, progress: float) -> float:
    """Cosine decay from ``base`` at progress 0 to 0 at progress 1."""
    return base * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam, the usual choice for binary networks (Bi-Real Net, ReActNet); no weight decay on sign weights."""
    return torch.optim.Adam(params, lr=lr)


def finetune(task: Task, model: nn.Module, iterations: int, lr: float = DEFAULT_LR, seed: int = 0,
             desc: str = "fine-tune") -> float:
    """Train ``model`` (its mask fixed) for ``iterations`` steps on ``task``; returns the last loss (nan if none)."""
    seed_everything(seed)
    model.train()
    optimizer = make_optimizer(model.parameters(), lr)
    batches = task.train_batches()
    last, smooth = float("nan"), None
    bar = tqdm(range(iterations), desc=desc, dynamic_ncols=True, leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine(lr, step / max(iterations, 1))
        loss = task.loss(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last = float(loss.detach())
        smooth = last if smooth is None else 0.9 * smooth + 0.1 * last
        bar.set_postfix(loss=f"{smooth:.3f}")
    bar.close()
    return last
