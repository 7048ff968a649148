"""Fine-tuning every mask source shares: fixed mask, Adam, cosine learning-rate decay, seeded.

``mixbin.train`` (pre-training / fine-tuning), ``mixbin.search`` and ``mixbin.baseline`` all fine-tune
through ``finetune`` so that only the mask differs between mask sources (same steps, same seed, same data).
It runs ``tracker.loop.train_over``, the loop ``tracker.train`` trains SiamFC with.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from mixbin.provenance import seed_everything
from mixbin.task import Task
from tracker.loop import train_over

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
    """Train ``model`` (mask fixed) ``iterations`` steps on ``task``; returns the last loss (nan if none)."""
    seed_everything(seed)
    model.train()
    optimizer = make_optimizer(model.parameters(), lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(1.0, s / max(iterations, 1)))
    _, last = train_over(task.train_batches(), lambda batch: task.loss(model, batch), optimizer, schedule,
                         0, iterations, desc=desc, leave=False)
    return last
