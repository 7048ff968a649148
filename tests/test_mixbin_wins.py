"""MixBin keeps FP the one unit that matters, where first, last and random fills miss it (issue 19 item 6).

A synthetic chain of five gated units; each unit's binary path adds an offset to its input, and the loss
is the squared offset at the output, so a unit matters as much as its offset. u3 (neither first, last nor
cheapest) has the large offset; the budget fits u3 alone, or pairs of the cheaper units, which a rule
that counts units would prefer.
"""
from __future__ import annotations

import itertools
import random

import torch
from torch import nn

from backbones.cost import UnitCosts, reference_costs
from mixbin import baseline, search
from mixbin.select import budget_floor, fits, states_for

MACS = {"u0": 100, "u1": 150, "u2": 150, "u3": 300, "u4": 100}
OFFSETS = {"u0": 0.2, "u1": 0.2, "u2": 0.2, "u3": 3.0, "u4": 0.2}
IMPORTANT = "u3"


class _Unit(nn.Module):
    """z * FP(x) + (1 - z) * BIN(x), FP = a learnable scale times x, BIN = FP + a fixed offset."""

    def __init__(self, offset: float):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.offset = offset
        self.gate = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fp = self.scale * x
        z = 1.0 if self.gate is None else self.gate
        return fp + (1 - z) * self.offset


class _Chain(nn.Module):
    def __init__(self, offsets: dict[str, float] = OFFSETS):
        super().__init__()
        self.names = list(offsets)  # unit names may hold dots (layer1.0.conv), which ModuleDict keys may not
        self.blocks = nn.ModuleDict({n.replace(".", "_"): _Unit(o) for n, o in offsets.items()})

    def units(self) -> dict[str, _Unit]:
        return {n: self.blocks[n.replace(".", "_")] for n in self.names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.blocks.values():
            x = unit(x)
        return x


class _Model(nn.Module):
    def __init__(self, offsets: dict[str, float] = OFFSETS):
        super().__init__()
        self.backbone = _Chain(offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


class _SyntheticTask:
    """Regression of the input onto itself; the loss is what the binary offsets add."""

    name, backbone, width, device, seed = "synthetic", "chain", 1.0, torch.device("cpu"), 0

    def train_batches(self):
        generator = torch.Generator().manual_seed(0)
        while True:
            yield torch.randn(16, 4, generator=generator)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return ((model(batch) - batch) ** 2).mean()


def test_mixbin_keeps_the_important_unit_where_the_fills_miss_it():
    costs = UnitCosts(64, dict(MACS))
    names = list(MACS)
    target = costs.budget(states_for({IMPORTANT}, names)) + 1e-9
    feasible = [set(s) for r in range(1, 6) for s in itertools.combinations(names, r) if fits(set(s), costs, target)]
    assert len([s for s in feasible if s]) >= 2 and {IMPORTANT} in feasible
    most_units = max(len(s) for s in feasible)  # what a rule that counts units picks never holds u3
    assert most_units >= 2 and all(IMPORTANT not in s for s in feasible if len(s) == most_units)
    assert IMPORTANT not in (names[0], names[-1]) and MACS[IMPORTANT] > min(MACS.values())

    torch.manual_seed(0)
    result = search.mixbin_search(_SyntheticTask(), _Model(), costs, target, search.SearchSettings(iterations=200))
    assert result.states[IMPORTANT] == "fp" and result.gate_agreement
    assert baseline.first_mask(costs, target)[IMPORTANT] == "binary"
    assert baseline.last_mask(costs, target)[IMPORTANT] == "binary"
    misses = sum(baseline.random_mask(costs, target, seed)[IMPORTANT] == "binary" for seed in range(5))
    assert misses >= 3


def test_a_search_at_width_half_lands_within_one_smallest_unit_of_the_best_budget():
    """The same chain with resnet width 0.5's real unit costs and seeded unit importances (seed 3): the
    gates' set must fit 0.3 and reach at least the best reachable budget minus the smallest unit's share."""
    costs = reference_costs("resnet", 0.5)
    rng = random.Random(3)
    offsets = {name: rng.uniform(0.05, 1.0) for name in costs.unit_macs}
    torch.manual_seed(3)
    settings = search.SearchSettings(iterations=150)
    result = search.mixbin_search(_SyntheticTask(), _Model(offsets), costs, 0.3, settings, 3)
    assert all(z < 0.05 or z > 0.95 for z in result.gates.values()) and result.gate_agreement
    assert budget_floor(costs, 0.3) <= costs.budget(result.states) <= 0.3
