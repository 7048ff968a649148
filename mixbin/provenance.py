"""Provenance recorded next to every output: the code version, the command line, seeding."""
from __future__ import annotations

import random
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when files differ from it), or 'unknown'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha or "unknown"


def command_line(prog: str, argv: list[str] | None) -> str:
    """The command as a user would type it: ``python -m prog args...``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", prog, *args])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
