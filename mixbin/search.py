"""MixBin search (docs/design.md section 4): gated FP/binary mixing under a budget, exact hard selection,
then the shared fine-tuning with the mask fixed.

    python -m mixbin.search --data ../shared/data/classification/cifar10 --backbone resnet --width 0.5 \
        --budget 0.3 --iterations 300 --init-from runs/fp/checkpoint.safetensors --out masks/resnet-0.3.json
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm import tqdm

from backbones.cli import (
    ArgumentParser,
    UsageError,
    finite_float,
    float_range,
    nonnegative_float,
    positive_float,
    run_cli,
)
from backbones.cost import UnitCosts
from backbones.mask import Mask
from mixbin.common import (
    add_length_args,
    add_mask_output_args,
    add_task_args,
    build_task,
    check_mask_args,
    finish,
    initial_model,
)
from mixbin.finetune import cosine, make_optimizer
from mixbin.gates import GateSet, anneal, budget_matched_init
from mixbin.provenance import command_line, seed_everything
from mixbin.select import fits, select_fp, states_for, unused_budget
from mixbin.task import Task, epochs_to_iterations

PROG = "python -m mixbin.search"
DEFAULT_SEARCH_EPOCHS = 5.0
fraction = float_range(0, 1, low_open=True, name="fraction")


@dataclass
class SearchSettings:
    """Search hyper-parameters: beta annealed geometrically, lambda_c linearly; the soft budget is held at
    the target by a per-step threshold on the gates, and the last ``landing`` fraction of steps pulls the
    gates onto the set their own values choose in the landing window (``landing_loss``)."""

    iterations: int
    lr: float = 1e-3
    gate_lr: float = 0.05
    landing: float = 0.2
    landing_pull: float = 5.0
    lambda_crisp_start: float = 0.0
    lambda_crisp_end: float = 1.0
    beta_start: float = 1.0
    beta_end: float = 50.0
    gate_init: float | None = None  # None: the uniform gate value whose soft OPs equal the target


@dataclass
class SearchResult:
    """The hard mask, the gates it came from (at the final beta) and whether the gates chose it."""

    states: dict[str, str]
    gates: dict[str, float]
    psi: dict[str, float]
    soft_budget: float
    undecided: int
    task_loss: float
    gate_agreement: bool
    threshold: float


def _psi(gates: GateSet) -> dict[str, float]:
    return dict(zip(gates.names, gates.psi.detach().cpu().tolist(), strict=True))


def _tiebreak(values: dict[str, float]) -> dict[str, float]:
    """Values clipped to [-1000, 1000], the range select_fp's quantised keys accept."""
    return {n: min(max(v, -1000.0), 1000.0) for n, v in values.items()}


def gate_choice(gates: dict[str, float], psi: dict[str, float], costs: UnitCosts,
                target: float) -> tuple[dict[str, str], bool]:
    """The hard mask the gates chose (FP exactly where z > 0.5) and True when that set fits the target;
    otherwise the exact knapsack on the gate values (exact ties broken by psi, which counts no units:
    a unit with psi < 0 lowers the sum) and False, said on stderr."""
    names = list(costs.unit_macs)
    chosen = {n for n in names if gates[n] > 0.5}
    if fits(chosen, costs, target):
        return states_for(chosen, names), True
    print(f"mixbin.search: the units with gates > 0.5 ({', '.join(sorted(chosen))}) cost "
          f"{costs.budget(states_for(chosen, names)):.4f}, over the target {target:g}; "
          "falling back to the knapsack on the gate values", file=sys.stderr)
    return select_fp(gates, costs, target, tiebreak=_tiebreak(psi)), False


def landing_loss(gates: GateSet, costs: UnitCosts, target: float) -> torch.Tensor:
    """Binary cross-entropy of the gates toward the most probable set (read as independent Bernoulli
    gates: the largest sum of logits, which counts no units) within the landing window
    [budget_floor, target]: the pull that makes them end crisp on a set that fits."""
    logits = gates.beta * (gates.psi - gates.threshold)
    scores = _tiebreak(dict(zip(gates.names, logits.detach().cpu().tolist(), strict=True)))
    states = select_fp(scores, costs, target, tiebreak=_tiebreak(_psi(gates)), at_least_floor=True)
    goal = torch.tensor([1.0 if states[n] == "fp" else 0.0 for n in gates.names], device=gates.psi.device)
    return nn.functional.binary_cross_entropy_with_logits(logits, goal, reduction="sum")


def _regulariser(step: int, n: int, settings: SearchSettings, gates: GateSet, costs: UnitCosts,
                 target: float) -> torch.Tensor:
    """Set beta (and, before the landing, the threshold) for this step; return crispness + landing terms."""
    progress = step / max(n - 1, 1)
    gates.beta = anneal(settings.beta_start, settings.beta_end, progress)
    lambda_c = anneal(settings.lambda_crisp_start, settings.lambda_crisp_end, progress, "linear")
    crisp = lambda_c * gates.crispness_loss()
    if step < n - round(settings.landing * n):
        gates.project(costs, target)
        return crisp
    return crisp + settings.landing_pull * landing_loss(gates, costs, target)  # threshold now fixed


def mixbin_search(task: Task, model: nn.Module, costs: UnitCosts, target: float, settings: SearchSettings,
                  seed: int = 0) -> SearchResult:
    """Train weights and gates jointly on task loss + lambda_c crispness, the gates thresholded each step so
    that the soft budget equals the target; then land: the gates are pulled onto the set their values
    choose within [budget_floor, target], so they end crisp on it. The hard mask is the gates' choice
    (``gate_choice``)."""
    seed_everything(seed)
    backbone = model.backbone
    init = settings.gate_init if settings.gate_init is not None else budget_matched_init(costs, target)
    too_big = {n for n in costs.unit_macs if not fits({n}, costs, target)}  # never FP within the target
    gates = GateSet(list(costs.unit_macs), init=init, beta=settings.beta_start, closed=too_big).to(task.device)
    weights_opt = make_optimizer(model.parameters(), settings.lr)
    gates_opt = torch.optim.Adam(gates.parameters(), lr=settings.gate_lr)
    batches = task.train_batches()
    n = settings.iterations
    model.train()
    task_loss = float("nan")
    bar = tqdm(range(n), desc="mixbin search", dynamic_ncols=True, leave=False, disable=None)  # terminal only
    try:
        for step in bar:
            for group in weights_opt.param_groups:
                group["lr"] = cosine(settings.lr, step / max(n, 1))
            regulariser = _regulariser(step, n, settings, gates, costs, target)
            gates.apply(backbone)
            loss_task = task.loss(model, next(batches))
            weights_opt.zero_grad(set_to_none=True)
            gates_opt.zero_grad(set_to_none=True)
            (loss_task + regulariser).backward()
            weights_opt.step()
            gates_opt.step()
            task_loss = float(loss_task.detach())
            bar.set_postfix(loss=f"{task_loss:.3f}", budget=f"{float(gates.soft_budget(costs).detach()):.3f}",
                            undecided=gates.undecided())
    finally:
        bar.close()
        gates.remove(backbone)
    gates.beta = settings.beta_end
    z = gates.as_dict()
    psi = _psi(gates)
    states, agreement = gate_choice(z, psi, costs, target)
    return SearchResult(states, z, psi, float(gates.soft_budget(costs).detach()), gates.undecided(),
                        task_loss, agreement, gates.threshold)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="MixBin: choose which units of a backbone stay full precision under an OPs budget "
                    "(gated search, exact hard selection that never exceeds the budget, fine-tuning); "
                    "writes the mask and the fine-tuned weights.")
    add_task_args(parser)
    add_length_args(parser, "search", DEFAULT_SEARCH_EPOCHS)
    add_mask_output_args(parser)
    defaults = SearchSettings(iterations=0)
    parser.add_argument("--gate-lr", type=positive_float, default=defaults.gate_lr,
                        help=f"Adam learning rate of the gate parameters psi (default {defaults.gate_lr:g})")
    parser.add_argument("--landing", type=fraction, default=defaults.landing,
                        help="fraction of the search steps, at the end, that pull the gates onto the set "
                             "their values choose within [best reachable budget - smallest unit's share, "
                             f"budget] (default {defaults.landing:g})")
    parser.add_argument("--landing-pull", type=nonnegative_float, default=defaults.landing_pull,
                        help=f"weight of that pull (default {defaults.landing_pull:g})")
    parser.add_argument("--lambda-crisp", type=nonnegative_float, default=defaults.lambda_crisp_end,
                        help="final weight of the crispness loss, annealed linearly from 0 "
                             f"(default {defaults.lambda_crisp_end:g})")
    parser.add_argument("--beta-start", type=positive_float, default=defaults.beta_start,
                        help=f"initial gate sharpness (default {defaults.beta_start:g})")
    parser.add_argument("--beta-end", type=positive_float, default=defaults.beta_end,
                        help=f"final gate sharpness, annealed geometrically (default {defaults.beta_end:g})")
    parser.add_argument("--keep-search-weights", action="store_true",
                        help="fine-tune from the weights trained during the search instead of from the "
                             "starting weights (--init-from or the seeded initialisation) that every "
                             "baseline starts from")
    parser.add_argument("--gate-init", type=finite_float, default=None,
                        help="initial gate value in (0, 1) (default: the value whose soft OPs equal the "
                             "budget)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    costs = check_mask_args(args)
    if args.beta_start > args.beta_end:
        raise UsageError(f"need --beta-start <= --beta-end, got {args.beta_start:g} and {args.beta_end:g}")
    if args.gate_init is not None and not 0 < args.gate_init < 1:
        raise UsageError(f"--gate-init must lie in (0, 1), got {args.gate_init:g}")
    task = build_task(args)
    iterations = epochs_to_iterations(task, args.epochs, args.iterations, DEFAULT_SEARCH_EPOCHS)
    settings = SearchSettings(iterations=iterations, lr=args.lr, gate_lr=args.gate_lr,
                              landing=args.landing, landing_pull=args.landing_pull,
                              lambda_crisp_end=args.lambda_crisp,
                              beta_start=args.beta_start, beta_end=args.beta_end, gate_init=args.gate_init)
    start = Mask(args.backbone, args.width, {n: "fp" for n in costs.unit_macs})
    seed_everything(args.seed)  # the same starting weights as every baseline with this seed
    model = initial_model(task, start, args.init_from)
    start_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    search_started = time.perf_counter()
    result = mixbin_search(task, model, costs, args.budget, settings, args.seed)
    search_time = time.perf_counter() - search_started
    if not args.keep_search_weights:  # fine-tune from the same start as the baselines: only the mask differs
        model.load_state_dict(start_weights)
    mask = Mask(args.backbone, args.width, result.states, {"target": args.budget})
    provenance = {"method": "mixbin", "command": command_line("mixbin.search", argv),
                  "search": asdict(settings), "search_time_s": round(search_time, 2),
                  "search_s_per_iteration": round(search_time / max(iterations, 1), 3),
                  "gates": result.gates, "psi": result.psi, "soft_budget": result.soft_budget,
                  "undecided": result.undecided, "gate_agreement": result.gate_agreement,
                  "selection": "gates > 0.5" if result.gate_agreement
                  else "gates > 0.5 over the target: knapsack on the gate values",
                  "final_threshold": round(result.threshold, 6),
                  "budget_unused": unused_budget(result.states, costs, args.budget),
                  "finetune_from": "search weights" if args.keep_search_weights else "start weights"}
    saved = finish(task, model, mask, args, provenance, started)
    fp = [n for n, s in saved.units.items() if s == "fp"]
    print(f"wrote {args.out}: budget {saved.budget['achieved']:.4f} (target {args.budget:g}), FP units "
          f"{', '.join(fp) or 'none'}; {task.name} metrics {saved.search['metrics']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
