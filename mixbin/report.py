"""Summarise a MixBin experiment folder: accuracy mean and spread per (budget, method), as a Markdown table.

    python -m mixbin.report OUT_DIR [--out table.md]
    python -m mixbin.report --bounds MASK.json ...   # issue 19's checks of searched masks, one row each

Reads every mask file (``*.json`` with a ``search`` field) and the uniform runs' ``all_*/checkpoint.json``
written by ``experiments/mixbin_cifar10.sh``.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from backbones.cli import ArgumentParser, UsageError, atomic_write_text, check_output_file, run_cli
from backbones.cost import reference_costs
from backbones.mask import MaskError, load_mask
from eval.bootstrap import format_ci, paired_difference
from mixbin.gates import UNDECIDED_HIGH, UNDECIDED_LOW
from mixbin.select import best_reachable, budget_floor

ORDER = ["mixbin", "random", "iterative", "sensitivity", "first", "last", "prune", "binary", "fp"]


def run_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files a report reads: mask files (``*.json``) and the uniform runs' ``*/checkpoint.json``."""
    return sorted(folder.glob("*.json")), sorted(folder.glob("*/checkpoint.json"))


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None


def _figures(record: dict, budget: object) -> dict:
    """What the table needs of one run: test accuracy, achieved budget, wall time and seed."""
    return {"accuracy": float(record["metrics"]["accuracy"]), "budget": float(budget),
            "wall": float(record.get("wall_time_s", 0.0)), "seed": record.get("seed")}


def _mask_run(path: Path) -> tuple[tuple[str, str], dict] | None:
    """(budget label, method) and the figures of a finished mask file, or None for any other JSON."""
    data = _read_json(path)
    search = data.get("search") if isinstance(data, dict) else None
    if not isinstance(search, dict) or "metrics" not in search:
        return None
    try:
        target = search.get("budget_target", data["budget"]["target"])
        achieved = search.get("budget_vs_reference", data["budget"]["achieved"])
        return (f"{float(target):g}", str(search.get("method", "?"))), _figures(search, achieved)
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{path}: not a finished mask file (missing or malformed {err})") from None


def _uniform_run(path: Path) -> tuple[tuple[str, str], dict] | None:
    """("all", state) and the figures of an ``all_fp`` / ``all_binary`` run, or None for another run."""
    data = _read_json(path)
    try:
        states = set(data["mask"]["units"].values())
        uniform = path.parent.name.split("_s")[0] in ("all_binary", "all_fp")  # all_fp or all_fp_s2
        if len(states) != 1 or not data.get("metrics") or not uniform:
            return None
        return ("all", next(iter(states))), _figures(data, data["mask"]["budget"]["achieved"])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{path}: not a finished run's sidecar (missing or malformed {err})") from None


def collect(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """Runs grouped by (budget label, method), each with accuracy, achieved budget and wall time."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    masks, uniform = run_files(folder)
    found = [_mask_run(path) for path in masks] + [_uniform_run(path) for path in uniform]
    for key, run in filter(None, found):
        groups[key].append(run)
    return groups


def per_seed(runs: list[dict]) -> dict[int, float]:
    """Mean accuracy per fine-tuning seed (several masks per seed, e.g. random's, are averaged)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        by_seed[int(r["seed"] or 0)].append(r["accuracy"])
    return {seed: statistics.mean(acc) for seed, acc in by_seed.items()}


def versus_mixbin(runs: list[dict], mixbin: list[dict] | None) -> str:
    """Mean of (method - MixBin) over the fine-tuning seeds both have, with its 95% bootstrap interval
    (eval.bootstrap.paired_difference over seeds); '-' without a common seed."""
    if not mixbin:
        return "-"
    mine, theirs = per_seed(runs), per_seed(mixbin)
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return "-"
    mean, interval = paired_difference([mine[s] for s in seeds], [theirs[s] for s in seeds])
    return f"{format_ci(mean, interval)} (n={len(seeds)})"


def _versus(budget: str, method: str, groups: dict[tuple[str, str], list[dict]]) -> str:
    runs = groups[(budget, method)]
    if budget != "all":
        return "-" if method == "mixbin" else versus_mixbin(runs, groups.get((budget, "mixbin")))
    pairs = [(b, groups[(b, "mixbin")]) for b, m in sorted(groups) if m == "mixbin" and b != "all"]
    return "; ".join(f"b{b}: {versus_mixbin(runs, mixbin)}" for b, mixbin in pairs) or "-"


def table(groups: dict[tuple[str, str], list[dict]]) -> str:
    """Markdown rows: budget, method, runs, mean accuracy, spread (max - min), achieved budget, wall time,
    and the difference from MixBin paired by fine-tuning seed with its 95% bootstrap interval."""
    head = ("| budget | method | runs | test accuracy (mean) | spread (min-max) | achieved budget "
            "| wall time per run (s) | minus MixBin, paired by seed [95% CI] |")
    rows = [head, "|---|---|---|---|---|---|---|---|"]

    def key(k: tuple[str, str]) -> tuple:
        budget, method = k
        return (budget == "all", -float(budget) if budget != "all" else 0,
                ORDER.index(method) if method in ORDER else 99)

    for budget, method in sorted(groups, key=key):
        runs = groups[(budget, method)]
        acc = [r["accuracy"] for r in runs]
        spread = f"{min(acc):.3f}-{max(acc):.3f}" if len(acc) > 1 else "-"
        rows.append(f"| {budget} | {method} | {len(runs)} | {statistics.mean(acc):.3f} | {spread} | "
                    f"{statistics.mean(r['budget'] for r in runs):.3f} | "
                    f"{statistics.mean(r['wall'] for r in runs):.0f} | {_versus(budget, method, groups)} |")
    return "\n".join(rows)


SOFT_SLACK = 0.01  # how far above its target a shipped mask's soft budget may end (issue 19)


def bound_check(path: str | Path) -> dict:
    """Issue 19's checks of one searched mask: crisp gates, gate agreement, soft budget at most
    SOFT_SLACK over the target, and target >= budget >= best reachable - smallest unit's share."""
    try:
        mask = load_mask(path)
    except MaskError as err:
        raise UsageError(str(err)) from None
    search, target = mask.search or {}, float(mask.budget["target"])
    costs = reference_costs(mask.backbone, mask.width)
    budget = costs.budget(mask.units)
    gates = search.get("gates") or {}
    soft = search.get("soft_budget")
    row = {"file": str(path), "target": target, "budget": budget, "best": best_reachable(costs, target),
           "floor": budget_floor(costs, target), "soft_budget": soft,
           "crisp": bool(gates) and all(z < UNDECIDED_LOW or z > UNDECIDED_HIGH for z in gates.values()),
           "gate_agreement": search.get("gate_agreement") is True}
    row["meets"] = (row["crisp"] and row["gate_agreement"] and soft is not None
                    and soft <= target + SOFT_SLACK and row["floor"] - 1e-9 <= budget <= target + 1e-9)
    return row


def bounds_table(rows: list[dict]) -> str:
    """Markdown rows of ``bound_check`` results."""
    lines = ["| mask | target | budget | best reachable | floor | soft budget | crisp | agreement | meets |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        soft = "-" if r["soft_budget"] is None else f"{r['soft_budget']:.4f}"
        lines.append(f"| {r['file']} | {r['target']:g} | {r['budget']:.4f} | {r['best']:.4f} "
                     f"| {r['floor']:.4f} "
                     f"| {soft} | {r['crisp']} | {r['gate_agreement']} | {r['meets']} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mixbin.report``."""
    parser = ArgumentParser(prog="python -m mixbin.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="experiment output folder")
    parser.add_argument("--bounds", nargs="+", metavar="MASK.json",
                        help="instead: check these searched masks against issue 19's bounds "
                             "(exit 1 if any fails)")
    parser.add_argument("--out", metavar="TABLE.md", help="also write the table to this Markdown file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bounds:
        rows = [bound_check(path) for path in args.bounds]
        print(bounds_table(rows))
        return 0 if all(r["meets"] for r in rows) else 1
    if args.folder is None:
        raise UsageError("give an experiment folder or --bounds MASK.json ...")
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"experiment folder not found: {folder}")
    if args.out:
        masks, uniform = run_files(folder)
        check_output_file(args.out, "--out", inputs=[*masks, *uniform])
    groups = collect(folder)
    if not groups:
        raise UsageError(f"no finished runs (mask files with search metrics) in {folder}")
    text = table(groups)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
