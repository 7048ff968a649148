"""Hard selection of the FP units under a budget: MixBin's exact knapsack, its brute-force reference, and
the greedy fills of the baselines. Budgets are checked in exact integer arithmetic, so no result ever
exceeds the target.

Exact selection maximises, lexicographically, (1) the sum of the units' scores (gate values z for MixBin),
(2) the sum of their tie-breakers (MixBin: psi itself, which counts no units: a unit with psi < 0 lowers
the sum, so only exact ties of the gate sums are broken by it), both quantized to 1e-12,
(3) the OPs used, (4) earlier units in forward order, over every FP set S with budget(S) <= target. The
last key makes the optimum unique.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from backbones.cost import BINARY_MACS_PER_OP, UnitCosts

WORD = BINARY_MACS_PER_OP  # budgets are counted exactly in 1/WORD MACs: a binary MAC costs 1/WORD OP
MAX_EXACT_UNITS = 24
SCORE_SCALE = 10**12
_CHUNK = 1 << 16


def _capacity(costs: UnitCosts, target: float) -> int:
    """Extra OPs (in 1/WORD MACs) that FP units may add over the all-binary network within ``target``."""
    fixed, total = costs.fixed_macs, sum(costs.unit_macs.values())
    limit = Fraction(target) * WORD * (fixed + total)
    return math.floor(limit) - WORD * fixed - total


def _extra(costs: UnitCosts, name: str) -> int:
    """What turning one unit from binary to FP adds, in 1/WORD MACs (exact)."""
    return (WORD - 1) * costs.unit_macs[name]


def fits(fp_units: set[str] | list[str], costs: UnitCosts, target: float) -> bool:
    """Whether the mask with exactly ``fp_units`` FP has budget <= ``target`` (exact arithmetic)."""
    return sum(_extra(costs, n) for n in fp_units) <= _capacity(costs, target)


def states_for(fp_units: set[str] | list[str], names: list[str]) -> dict[str, str]:
    """{unit: 'fp' | 'binary'} for every name, FP exactly for ``fp_units``."""
    chosen = set(fp_units)
    return {n: "fp" if n in chosen else "binary" for n in names}


def unused_budget(states: dict[str, str], costs: UnitCosts, target: float) -> float:
    """How much of the target (as a fraction of the FP OPs) the mask with ``states`` leaves unused."""
    return round(target - costs.budget(states), 6)


def check_reachable(costs: UnitCosts, target: float) -> None:
    """ValueError stating the reachable range when ``target`` is below the all-binary budget or above 1."""
    if not (target <= 1.0 and _capacity(costs, target) >= 0):
        raise ValueError(f"budget {target:g} is outside the reachable range "
                         f"[{costs.min_budget:.4f}, 1] for this backbone and width")


def _best_extra(costs: UnitCosts, target: float) -> int:
    """The most extra OPs (in 1/WORD MACs) that any set of FP units adds within ``target`` (exact 0/1
    knapsack; the empty set always fits once the target is reachable)."""
    check_reachable(costs, target)
    cap = _capacity(costs, target)
    sums = {0}
    for e in (_extra(costs, n) for n in costs.unit_macs):
        sums |= {s + e for s in sums if s + e <= cap}
    return max(sums)


def best_reachable(costs: UnitCosts, target: float) -> float:
    """The largest budget not over ``target`` that any set of FP units reaches."""
    fixed, total = costs.fixed_macs, sum(costs.unit_macs.values())
    return (WORD * fixed + total + _best_extra(costs, target)) / (WORD * costs.fp_ops)


def smallest_share(costs: UnitCosts) -> float:
    """The smallest unit's share of the budget: what turning it from binary to FP adds (of the FP OPs)."""
    return min(_extra(costs, n) for n in costs.unit_macs) / (WORD * costs.fp_ops)


def budget_floor(costs: UnitCosts, target: float) -> float:
    """Issue 19's lower bound on a searched mask's budget: the best reachable budget minus the smallest
    unit's share (the granularity the units' sizes allow)."""
    return best_reachable(costs, target) - smallest_share(costs)


def _quantize(values: list[float], scale: int, name: str) -> list[int]:
    out = []
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
        out.append(round(v * scale))
    return out


def _keys(names: list[str], scores: dict[str, float], tiebreak: dict[str, float] | None,
          costs: UnitCosts) -> tuple[list[int], list[int], list[int]]:
    missing = [n for n in names if n not in scores]
    if missing:
        raise ValueError(f"no score for unit(s) {', '.join(missing)}")
    tb = tiebreak or {}
    if any(abs(scores[n]) > 1e3 or abs(tb.get(n, 0.0)) > 1e3 for n in names):
        raise ValueError("scores and tie-breakers must lie in [-1000, 1000] (normalise them first)")
    s = _quantize([scores[n] for n in names], SCORE_SCALE, "scores")
    t = _quantize([tb.get(n, 0.0) for n in names], SCORE_SCALE, "tie-breakers")
    return s, t, [_extra(costs, n) for n in names]


def in_window(fp_units: set[str] | list[str], costs: UnitCosts, target: float) -> bool:
    """Whether the FP set fits ``target`` and reaches ``budget_floor`` (exact arithmetic)."""
    low, cap = _window(costs, target)
    return low <= sum(_extra(costs, n) for n in fp_units) <= cap


def _window(costs: UnitCosts, target: float) -> tuple[int, int]:
    """The extra OPs of budget_floor and of the target: the range a landed search must end in."""
    smallest = min(_extra(costs, n) for n in costs.unit_macs)
    return _best_extra(costs, target) - smallest, _capacity(costs, target)


def select_fp(scores: dict[str, float], costs: UnitCosts, target: float,
              tiebreak: dict[str, float] | None = None, at_least_floor: bool = False) -> dict[str, str]:
    """Exact hard selection: the states whose FP set maximises the objective above within ``target``
    (and, with ``at_least_floor``, at or above ``budget_floor``: the landing window of the search).

    Enumerates all 2^n FP sets in vectorised chunks (n <= 24 units; the backbones have 4 and 8).
    """
    names = list(costs.unit_macs)
    n = len(names)
    if n > MAX_EXACT_UNITS:
        raise ValueError(f"exact selection supports at most {MAX_EXACT_UNITS} units, got {n}")
    check_reachable(costs, target)
    s, t, e = _keys(names, scores, tiebreak, costs)
    low, cap = _window(costs, target) if at_least_floor else (0, _capacity(costs, target))
    shifts = np.array([n - 1 - i for i in range(n)], dtype=np.int64)  # unit 0 is the most significant bit
    vs, vt, ve = (np.array(x, dtype=np.int64) for x in (s, t, e))
    best: tuple[int, int, int, int] | None = None
    for start in range(0, 1 << n, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, 1 << n), dtype=np.int64)
        bits = (idx[:, None] >> shifts) & 1
        extra = bits @ ve
        ok = (extra <= cap) & (extra >= low)
        if not ok.any():
            continue
        idx, bits, extra = idx[ok], bits[ok], extra[ok]
        score, tie = bits @ vs, bits @ vt
        i = np.lexsort((idx, extra, tie, score))[-1]
        cand = (int(score[i]), int(tie[i]), int(extra[i]), int(idx[i]))
        if best is None or cand > best:
            best = cand
    assert best is not None  # the empty set always fits once the target is reachable
    chosen = {names[i] for i in range(n) if (best[3] >> (n - 1 - i)) & 1}
    return states_for(chosen, names)


def select_fp_brute_force(scores: dict[str, float], costs: UnitCosts, target: float,
                          tiebreak: dict[str, float] | None = None) -> dict[str, str]:
    """Reference for tests: the same objective by plain itertools enumeration and tuple comparison."""
    names = list(costs.unit_macs)
    check_reachable(costs, target)
    s, t, e = _keys(names, scores, tiebreak, costs)
    best, best_set = None, ()
    for r in range(len(names) + 1):
        for subset in itertools.combinations(range(len(names)), r):
            if not fits([names[i] for i in subset], costs, target):
                continue
            earliness = sum(1 << (len(names) - 1 - i) for i in subset)
            key = (sum(s[i] for i in subset), sum(t[i] for i in subset), sum(e[i] for i in subset), earliness)
            if best is None or key > best:
                best, best_set = key, subset
    return states_for({names[i] for i in best_set}, names)


def greedy_fill(order: list[str], costs: UnitCosts, target: float) -> dict[str, str]:
    """Scan units in ``order`` and keep each FP if it still fits; one that does not fit is skipped."""
    names = list(costs.unit_macs)
    if sorted(order) != sorted(names):
        raise ValueError("greedy order must list every unit exactly once")
    check_reachable(costs, target)
    room = _capacity(costs, target)
    chosen = set()
    for name in order:
        if _extra(costs, name) <= room:
            chosen.add(name)
            room -= _extra(costs, name)
    return states_for(chosen, names)
