"""Provenance recorded next to every output: the command line and seeding (code version: backbones.cli)."""
from __future__ import annotations

import random
import shlex
import sys

import numpy as np
import torch


def command_line(prog: str, argv: list[str] | None) -> str:
    """The command as a user would type it: ``python -m prog args...``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", prog, *args])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
