"""Summarise a MixBin experiment folder: accuracy mean and spread per (budget, method), as a Markdown table.

    python -m mixbin.report OUT_DIR [--out table.md]

Reads every mask file (``*.json`` with a ``search`` field) and the uniform runs' ``all_*/checkpoint.json``
written by ``experiments/mixbin_cifar10.sh``.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from backbones.cli import UsageError, atomic_write_text, run_cli

ORDER = ["mixbin", "random", "iterative", "sensitivity", "first", "last", "prune", "binary", "fp"]


def collect(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """Runs grouped by (budget label, method), each with accuracy, achieved budget and wall time."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        search = data.get("search") if isinstance(data, dict) else None
        if not isinstance(search, dict) or "metrics" not in search:
            continue
        method = search.get("method", "?")
        target = search.get("budget_target", data["budget"]["target"])
        achieved = search.get("budget_vs_reference", data["budget"]["achieved"])
        groups[(f"{target:g}", method)].append({"accuracy": search["metrics"]["accuracy"], "budget": achieved,
                                                 "wall": search.get("wall_time_s", 0.0), "seed": search.get("seed")})
    for path in sorted(folder.glob("*/checkpoint.json")):
        data = json.loads(path.read_text())
        states = set(data["mask"]["units"].values())
        if len(states) == 1 and data.get("metrics") and path.parent.name in ("all_binary", "all_fp"):
            budget = data["mask"]["budget"]["achieved"]
            groups[("all", next(iter(states)))].append({"accuracy": data["metrics"]["accuracy"], "budget": budget,
                                                         "wall": data.get("wall_time_s", 0.0), "seed": data.get("seed")})
    return groups


def table(groups: dict[tuple[str, str], list[dict]]) -> str:
    """Markdown rows: budget, method, runs, mean accuracy, spread (max - min), achieved budget, wall time."""
    rows = ["| budget | method | runs | test accuracy (mean) | spread (min-max) | achieved budget | wall time per run (s) |",
            "|---|---|---|---|---|---|---|"]

    def key(k: tuple[str, str]) -> tuple:
        budget, method = k
        return (budget == "all", -float(budget) if budget != "all" else 0,
                ORDER.index(method) if method in ORDER else 99)

    for budget, method in sorted(groups, key=key):
        runs = groups[(budget, method)]
        acc = [r["accuracy"] for r in runs]
        spread = f"{min(acc):.3f}-{max(acc):.3f}" if len(acc) > 1 else "-"
        rows.append(f"| {budget} | {method} | {len(runs)} | {statistics.mean(acc):.3f} | {spread} | "
                    f"{statistics.mean(r['budget'] for r in runs):.3f} | {statistics.mean(r['wall'] for r in runs):.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixbin.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="experiment output folder")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"experiment folder not found: {folder}")
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
