"""Shared test fixtures: the real data under ../shared/data, seeded RNGs."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TRACKING = SHARED_DATA / "tracking"
CIFAR = SHARED_DATA / "classification" / "cifar10"
VIDEOS = SHARED_DATA / "videos"

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data (real benchmark data) is absent")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass
    yield


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: two threads on two shared cores stall each other (kernel calls
    pass their own thread count)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
