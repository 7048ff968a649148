"""Mask transfer at one budget: (a) MixBin searched on classification data and applied unchanged, (b) MixBin
searched on tracking data, (c) random masks, (d) iterative; each fine-tuned without and with
classification-pretrained weights, scored on val, as relative improvements over random with paired
bootstrap intervals (REPORT/table.md, table.json, and transfer.png: AUC per source and start). Cells are
run by ``eval.sweep``'s ``run_cell`` (same ledger, resume and refusal).

"Without" classification-pretrained weights: the masked tracker starts from the FP tracker --from (as in
the sweep). "With": the same mask (the "without" cell's RUN/mask.json of that source and seed), but the
tracker's backbone starts from the classifier --cls-from (SiamFC has no other weights: the response is a
scaled cross-correlation), still distilled from the FP tracker --from, same recipe, iterations and seed.

    python -m eval.transfer --backbone resnet --budget 0.3 --data ../shared/data/tracking \\
        --cls-data ../shared/data/classification/cifar10 \\
        --cls-from runs/cls_resnet_fp/checkpoint.safetensors \\
        --from runs/resnet_fp/checkpoint.safetensors --seeds 0 1 2 --out runs/transfer_b0.3
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from backbones.cli import ArgumentParser, UsageError, apply_threads, atomic_write_text, run_cli
from eval.bootstrap import CONFIDENCE, format_ci, paired_difference, resample_indices
from eval.sweep import (
    Cell,
    Interrupted,
    add_plan_args,
    check_budgets,
    check_plan_inputs,
    groups,
    open_ledger,
    plan_from_args,
    run_cell,
    run_cells,
)
from mixbin.make import MASK_FILE, parse_budget_arg, tracker_checkpoint

FORMAT = "b2track-transfer/1"
SOURCES = ("mixbin-cls", "mixbin-tracking", "random", "iterative")
MIN_RANDOM_SEEDS = 3


def transfer_cells(budget: float | str, seeds: list[int], with_cls: bool) -> list[Cell]:
    """Every source x seed without classification weights, then (with --cls-from) the same with them."""
    plain = [Cell(budget, source, seed) for source in SOURCES for seed in seeds]
    return plain + ([Cell(c.budget, c.source, c.seed, "cls") for c in plain] if with_cls else [])


def relative_improvement(a: list[float], b: list[float]) -> tuple[float, tuple[float, float]]:
    """mean(a) / mean(b) - 1 over paired sequences, with its percentile bootstrap interval (the same
    resamples as eval.bootstrap)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    idx = resample_indices(x.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = x[idx].mean(axis=1) / y[idx].mean(axis=1) - 1
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(x.mean() / y.mean() - 1), (float(low), float(high))


def paired(row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Relative improvement and difference of ``row`` over ``base``, paired by sequence."""
    names = sorted(set(row["per_sequence_auc"]) & set(base["per_sequence_auc"]))
    a = [row["per_sequence_auc"][n] for n in names]
    b = [base["per_sequence_auc"][n] for n in names]
    rel, rel_ci = relative_improvement(a, b)
    diff, diff_ci = paired_difference(a, b)
    verdict = "tie" if diff_ci[0] <= 0 <= diff_ci[1] else ("better" if diff > 0 else "worse")
    return {"versus": base["row"], "relative": rel, "relative_ci95": list(rel_ci), "difference": diff,
            "difference_ci95": list(diff_ci), "verdict": verdict, "sequences": len(names)}


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row against random with the same start; each 'with' row against its 'without'; and the
    transferred mask against the tracking-searched one."""
    by = {(r["source"], r["init"]): r for r in rows}
    out = []
    for r in rows:
        if r["source"] != "random" and ("random", r["init"]) in by:
            out.append({"row": r["row"], **paired(r, by[("random", r["init"])])})
    for (source, init), r in by.items():
        if init == "cls" and (source, "fp") in by:
            out.append({"row": r["row"], **paired(r, by[(source, "fp")])})
    for init in ("fp", "cls"):
        if ("mixbin-cls", init) in by and ("mixbin-tracking", init) in by:
            out.append({"row": by[("mixbin-cls", init)]["row"],
                        **paired(by[("mixbin-cls", init)], by[("mixbin-tracking", init)])})
    return out


def markdown(rows: list[dict[str, Any]], compared: list[dict[str, Any]], budget: float | str) -> str:
    lines = [f"# Mask transfer at budget {budget}", "", "| row | source | start | seeds | AUC [95% CI] |",
             "|---|---|---|---|---|"]
    start = {"fp": "FP tracker", "cls": "classifier"}
    for r in rows:
        lines.append(f"| {r['row']} | {r['source']} | {start[r['init']]} | {len(r['seeds'])} | "
                     f"{format_ci(r['auc'], r['auc_ci95'])} |")
    lines += ["", "| row | versus | relative AUC % [95% CI] | difference [95% CI] | verdict |",
              "|---|---|---|---|---|"]
    for c in compared:
        relative = format_ci(100 * c["relative"], [100 * v for v in c["relative_ci95"]], 1)
        lines.append(f"| {c['row']} | {c['versus']} | {relative} | "
                     f"{format_ci(c['difference'], c['difference_ci95'])} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def plot_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """AUC with its 95% interval per mask source, one marker per start (FP tracker, classifier)."""
    from matplotlib.figure import Figure

    from backbones.cli import atomic_path

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    sources = [s for s in SOURCES if any(r["source"] == s for r in rows)]
    for k, (init, label) in enumerate((("fp", "from the FP tracker"), ("cls", "from the classifier"))):
        mine = {r["source"]: r for r in rows if r["init"] == init}
        at = [(i + (k - 0.5) * 0.2, mine[s]) for i, s in enumerate(sources) if s in mine]
        if not at:
            continue
        aucs = [r["auc"] for _, r in at]
        bounds = [r["auc_ci95"] or (r["auc"], r["auc"]) for _, r in at]
        yerr = [[r["auc"] - b[0] for (_, r), b in zip(at, bounds, strict=True)],
                [b[1] - r["auc"] for (_, r), b in zip(at, bounds, strict=True)]]
        ax.errorbar([x for x, _ in at], aucs, yerr=yerr, fmt="o", capsize=4, color=f"C{k}", label=label)
    ax.set_xticks(range(len(sources)), sources)
    ax.set(ylabel="AUC (val, seeds pooled, 95% CI)", title=f"Mask transfer at budget {rows[0]['budget']}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def runner(plan, report: Path):
    """run_cell, a 'with' cell reusing the mask of its 'without' cell (same source and seed)."""
    def run(cell: Cell) -> dict[str, Any]:
        source = None
        if cell.init == "cls":
            source = str(report / "runs" / Cell(cell.budget, cell.source, cell.seed).name / MASK_FILE)
        return run_cell(cell, plan, report, mask_source=source)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m eval.transfer", description=(
        "Mask transfer at one budget: MixBin searched on classification data (applied unchanged), MixBin on "
        "tracking data, random masks (3+ seeds) and iterative, each fine-tuned from the FP tracker and "
        "(with --cls-from) from classification-pretrained backbone weights; relative improvements over "
        "random with paired 95% bootstrap intervals. Rerun to resume."))
    parser.add_argument("--budget", type=parse_budget_arg, required=True, metavar="B",
                        help="the budget, in (min_budget, 1)")
    add_plan_args(parser)
    parser.set_defaults(seeds=[0, 1, 2])
    return parser


def check_args(args: argparse.Namespace) -> None:
    if args.budget == "min" or float(args.budget) >= 1:
        raise UsageError(f"--budget {args.budget}: every mask source gives the same mask there; give a "
                         "budget between the backbone's min_budget and 1")
    if len(set(args.seeds)) < MIN_RANDOM_SEEDS:
        raise UsageError(f"--seeds: random masks need at least {MIN_RANDOM_SEEDS} different seeds, got "
                         f"{len(set(args.seeds))}")
    if args.cls_data is None:
        raise UsageError("--cls-data ROOT is needed: the transferred mask is searched on classification data")
    if args.cls_from is not None:
        kind = tracker_kind(args.cls_from)
        if kind != "classifier":
            raise UsageError(f"--cls-from {args.cls_from}: is a {kind} checkpoint, not a classifier "
                             "(mixbin.train writes one)")


def tracker_kind(path: str) -> str:
    from backbones.checkpoint import CheckpointError, read_checkpoint

    try:
        return read_checkpoint(path).kind
    except CheckpointError as err:
        raise UsageError(f"--cls-from {path}: {err}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    tracker_checkpoint(args.from_ckpt)
    plan = plan_from_args(args, {"budget": args.budget, "seeds": args.seeds, "sources": list(SOURCES)})
    check_budgets([args.budget], plan.backbone, plan.width)
    report = Path(args.out)
    check_plan_inputs(plan, report)
    apply_threads(plan.threads)
    ledger = open_ledger(report, FORMAT, plan, args.force)
    cells = transfer_cells(args.budget, args.seeds, args.cls_from is not None)
    if args.cls_from is None:
        print("no --cls-from: the rows with classification-pretrained weights are left out", file=sys.stderr)
    try:
        run_cells(cells, plan, report, ledger, runner(plan, report))
    except Interrupted as stop:
        print(f"interrupted; {len(ledger['runs'])} of {len(cells)} runs finished in {report}; rerun to "
              "resume", file=sys.stderr)
        return stop.code
    rows = groups(ledger, cells)
    compared = comparisons(rows)
    table = markdown(rows, compared, args.budget)
    atomic_write_text(report / "table.md", table)
    atomic_write_text(report / "table.json", json.dumps({"code_version": ledger["code_version"],
                                                         "settings": ledger["settings"], "rows": rows,
                                                         "comparisons": compared}, indent=2) + "\n")
    plot_rows(rows, report / "transfer.png")
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
