"""MixBin gates: one learnable psi per unit, z = sigmoid(beta * psi) in [0, 1] (z = 1 means FP).

The logistic is our continuous Heaviside approximation (ChipNet's role for it): as the sharpness beta is
annealed upward, z tends to 1 for psi > 0, 0 for psi < 0 (and stays 1/2 at psi = 0), so the gates end
crisp. ``GateSet`` installs z_u into each unit for the next forward (z * FP + (1 - z) * binary) and
gives the soft OPs, the threshold that holds them at the budget and the crispness loss of
docs/design.md section 4.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from backbones.base import Backbone
from backbones.cost import BINARY_OPS_PER_MAC, UnitCosts

UNDECIDED_LOW, UNDECIDED_HIGH = 0.05, 0.95


def heaviside(psi: torch.Tensor, beta: float) -> torch.Tensor:
    """Continuous Heaviside step: sigmoid(beta * psi); beta -> inf gives 1[psi > 0] (1/2 at 0)."""
    return torch.sigmoid(beta * psi)


def psi_for(z: float, beta: float) -> float:
    """The psi whose gate is ``z`` at sharpness ``beta`` (inverse of ``heaviside``), z in (0, 1)."""
    if not 0.0 < z < 1.0:
        raise ValueError(f"initial gate value must lie in (0, 1), got {z}")
    return math.log(z / (1.0 - z)) / beta


def anneal(start: float, end: float, progress: float, kind: str = "exp") -> float:
    """A schedule value at ``progress`` in [0, 1]: geometric ('exp', needs start > 0) or 'linear'."""
    p = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return start + (end - start) * p
    if kind == "exp":
        return start * (end / start) ** p
    raise ValueError(f"unknown schedule {kind!r}; choose exp or linear")


class GateSet(nn.Module):
    """Gate parameters psi_u for the named units, all starting at gate value ``init`` at sharpness ``beta``."""

    def __init__(self, unit_names: list[str], init: float = 0.5, beta: float = 1.0, closed: set[str] = frozenset()):
        super().__init__()
        if not unit_names:
            raise ValueError("a GateSet needs at least one unit")
        self.names = list(unit_names)
        self.beta = float(beta)
        self.psi = nn.Parameter(torch.full((len(self.names),), psi_for(init, beta), dtype=torch.float32))
        # units that can never be FP (e.g. too big for the budget on their own) keep z = 0 throughout
        self.register_buffer("open", torch.tensor([0.0 if n in closed else 1.0 for n in self.names]))
        self.threshold = 0.0  # tau: z = sigmoid(beta (psi - tau)); set by project(), frozen while landing

    def _gates_at(self, psi: torch.Tensor, tau: float) -> torch.Tensor:
        return heaviside(psi - tau, self.beta) * self.open.to(psi.dtype)

    def values(self) -> torch.Tensor:
        """Gate values z (one per unit, in ``names`` order) at the current beta and threshold."""
        return self._gates_at(self.psi, self.threshold)

    def project(self, costs: UnitCosts, target: float) -> None:
        """Set the threshold tau so that the soft budget equals ``target`` exactly (bisection: the soft
        budget falls as tau rises); tau takes no gradient, so the gates only rank the units."""
        psi = self.psi.detach().double()

        def budget(tau: float) -> float:
            return float(self._soft_ops_of(self._gates_at(psi, tau), costs) / costs.fp_ops)

        lo, hi = float(psi.min()) - 40 / self.beta, float(psi.max()) + 40 / self.beta
        if budget(lo) <= target:
            self.threshold = lo
            return
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if budget(mid) > target else (lo, mid)
        self.threshold = hi

    def as_dict(self) -> dict[str, float]:
        """{unit: z} at the current beta, as plain floats (for reports and provenance)."""
        return dict(zip(self.names, self.values().detach().cpu().tolist(), strict=True))

    def apply(self, backbone: Backbone) -> torch.Tensor:
        """Install z_u as each unit's gate for the next forward pass (call once per step); returns z."""
        units = backbone.units()
        missing = [n for n in self.names if n not in units]
        if missing:
            raise ValueError(f"backbone {backbone.name} has no unit(s) {', '.join(missing)}")
        z = self.values()
        for i, name in enumerate(self.names):
            units[name].gate = z[i]
        return z

    def remove(self, backbone: Backbone) -> None:
        """Clear the gates so that every unit runs its own state again."""
        for unit in backbone.units().values():
            unit.gate = None

    def _macs(self, costs: UnitCosts) -> torch.Tensor:
        macs = [costs.unit_macs[n] for n in self.names]
        return torch.tensor(macs, dtype=torch.float64, device=self.psi.device)

    def _soft_ops_of(self, z: torch.Tensor, costs: UnitCosts) -> torch.Tensor:
        z, macs = z.double(), self._macs(costs)
        return costs.fixed_macs + (z * macs + (1 - z) * macs * BINARY_OPS_PER_MAC).sum()

    def soft_ops(self, costs: UnitCosts) -> torch.Tensor:
        """fixed + sum_u [z_u MACs_u + (1 - z_u) MACs_u / 64], differentiable in psi (float64)."""
        return self._soft_ops_of(self.values(), costs)

    def soft_budget(self, costs: UnitCosts) -> torch.Tensor:
        """Soft OPs as a fraction of the all-FP OPs."""
        return self.soft_ops(costs) / costs.fp_ops

    def crispness_loss(self) -> torch.Tensor:
        """mean_u z_u (1 - z_u): zero only when every gate is exactly 0 or 1."""
        z = self.values()
        return (z * (1 - z)).mean()

    def undecided(self, low: float = UNDECIDED_LOW, high: float = UNDECIDED_HIGH) -> int:
        """How many gates still lie strictly between ``low`` and ``high``."""
        z = self.values().detach()
        return int(((z > low) & (z < high)).sum())


def budget_matched_init(costs: UnitCosts, target: float, lo: float = 0.05, hi: float = 0.95) -> float:
    """The uniform gate value whose soft OPs equal ``target`` (clipped to [lo, hi]): the search's start."""
    binary = costs.fixed_macs + sum(costs.unit_macs.values()) * BINARY_OPS_PER_MAC
    extra = sum(costs.unit_macs.values()) * (1 - BINARY_OPS_PER_MAC)
    z = (target * costs.fp_ops - binary) / extra
    return min(max(z, lo), hi)
