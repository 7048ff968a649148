"""Budget sweep: one tracker per (budget, mask source, seed), made by ``mixbin.make`` from the FP tracker
with identical settings, scored on the val split with ``eval.benchmark``'s functions, timed per frame with
``eval.speed``'s; a table (markdown + JSON) and the speed/accuracy front.

    python -m eval.sweep --backbone resnet --budgets 1.0 0.5 0.3 0.15 min \\
        --masks mixbin-cls mixbin-tracking random iterative sensitivity first last \\
        --data ../shared/data/tracking --from runs/resnet_fp/checkpoint.safetensors --out runs/sweep

REPORT holds ``sweep.json`` (format, code version, settings, and each finished run: rerunning the command
resumes where it stopped), ``runs/<cell>/`` (the mixbin.make runs, themselves resumable), ``bench/<cell>/``
(benchmark reports), ``table.md``, ``table.json`` and ``front.png``. Budget 1.0 is the FP tracker --from
itself (one row); at min every mask source gives the all-binary mask (one row per seed).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backbones.cli import (
    ArgumentParser,
    UsageError,
    add_device_arg,
    add_threads_arg,
    add_workers_arg,
    apply_threads,
    atomic_write_text,
    check_output_dir,
    code_version,
    float_range,
    int_range,
    positive_int,
    resolve_device,
    run_cli,
)
from backbones.cost import reference_costs
from eval.benchmark import build_tracker, check_sequences, run_benchmark
from eval.bootstrap import bootstrap_ci, format_ci
from mixbin.common import check_budget
from mixbin.make import (
    MASK_SOURCES,
    MakeSettings,
    check_disjoint,
    check_same_net,
    default_split,
    make,
    make_argv,
    parse_budget_arg,
    shipped_cls_mask,
    tracker_checkpoint,
)
from tracker.sequences import load_sequences

FORMAT = "b2track-sweep/1"
LEDGER = "sweep.json"
OWN = (LEDGER, "runs", "bench", "table.md", "table.json", "front.png")


class Interrupted(Exception):
    """A cell's make run was interrupted (its exit code); the ledger keeps the finished cells."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# ---------------------------------------------------------------- what is run

@dataclass(frozen=True)
class Cell:
    """One tracker of an experiment: budget, mask source ('fp' at 1.0, 'binary' at min), seed, and the
    fine-tune's start ('fp': the FP tracker; 'cls': the classifier --cls-from, eval.transfer)."""

    budget: float | str
    source: str
    seed: int
    init: str = "fp"

    @property
    def name(self) -> str:
        budget = self.budget if self.budget == "min" else f"{float(self.budget):g}"
        return f"b{budget}_{self.source}_s{self.seed}" + ("_cls" if self.init == "cls" else "")

    @property
    def group(self) -> str:
        """The row it belongs to (seeds pooled)."""
        return self.name.rsplit("_s", 1)[0] + ("_cls" if self.init == "cls" else "")


@dataclass
class Plan:
    """The settings every cell shares (all recorded in the ledger; device/threads/workers excepted)."""

    backbone: str
    width: float
    data: str
    from_ckpt: str
    split: str | None
    val_split: str
    iterations: int = 300
    search_iterations: int = 300
    batch_size: int = 8
    max_frames: int | None = None
    latency_frames: int = 30
    cls_data: str | None = None
    cls_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the experiment's own settings (budgets, masks...)
    device: str = "cpu"
    threads: int = 1
    workers: int = 0


NOT_RECORDED = ("device", "threads", "workers")


def cells_for(budgets: list[float | str], sources: list[str], seeds: list[int]) -> list[Cell]:
    """The sweep's cells: the FP tracker at 1.0, all-binary per seed at min, else every source x seed."""
    cells: list[Cell] = []
    for budget in budgets:
        if budget != "min" and float(budget) >= 1.0:
            cells.append(Cell(1.0, "fp", 0))
        elif budget == "min":
            cells += [Cell("min", "binary", s) for s in seeds]
        else:
            cells += [Cell(float(budget), source, s) for source in sources for s in seeds]
    return list(dict.fromkeys(cells))


# ---------------------------------------------------------------- one cell

def make_settings(cell: Cell, plan: Plan, report: Path, mask_source: str | None = None) -> MakeSettings:
    """The mixbin.make run of ``cell`` in REPORT/runs/<cell>."""
    source = mask_source or ("first" if cell.source == "binary" else cell.source)  # min: any source
    return MakeSettings(budget=cell.budget, data=plan.data, out=str(report / "runs" / cell.name),
                        from_ckpt=plan.from_ckpt, mask_source=source, split=plan.split,
                        backbone=plan.backbone, width=plan.width, iterations=plan.iterations,
                        search_iterations=plan.search_iterations, batch_size=plan.batch_size, seed=cell.seed,
                        init_from=plan.cls_from if cell.init == "cls" else None, cls_data=plan.cls_data,
                        cls_from=plan.cls_from, device=plan.device, threads=plan.threads,
                        workers=plan.workers)


def latency_ms(checkpoint: str, frames: int, device: Any) -> float:
    """Measured ms per frame of the packed tracker's ``update`` (eval.speed's timing), built-in sample."""
    from eval.speed import tracker_fps
    from tracker.sample import make_sample
    from tracker.siamfc import load_tracker

    clip, boxes = make_sample(frames=max(2, frames))
    fps = tracker_fps({"packed": load_tracker(checkpoint, device=device)}, list(clip), np.asarray(boxes[0]))
    return 1000.0 / fps["packed"]


def score(cell: Cell, checkpoint: str, plan: Plan, report: Path) -> dict[str, Any]:
    """Benchmark one checkpoint on the val sequences (REPORT/bench/<cell>) and time it."""
    device = resolve_device(plan.device)
    sequences = load_sequences(plan.data, plan.val_split)
    summary = run_benchmark({cell.name: build_tracker(checkpoint, device)}, sequences,
                            report / "bench" / cell.name, plan.max_frames)
    entry = summary["trackers"][cell.name]
    mean = entry["mean"]
    return {"auc": mean["auc"], "auc_ci95": mean.get("auc_ci95"), "precision": mean["precision"],
            "ao": mean["ao"], "ops": entry.get("ops"), "budget_achieved": entry.get("budget"),
            "fps_benchmark": entry.get("fps"),
            "per_sequence_auc": {name: m["auc"] for name, m in entry["sequences"].items()},
            "latency_ms": latency_ms(checkpoint, plan.latency_frames, device)}


def run_cell(cell: Cell, plan: Plan, report: Path, mask_source: str | None = None) -> dict[str, Any]:
    """Make ``cell``'s tracker (at 1.0: --from itself), score it; its ledger record. Interrupted: raises."""
    started = time.perf_counter()
    if cell.source == "fp":
        checkpoint = plan.from_ckpt
    else:
        settings = make_settings(cell, plan, report, mask_source)
        code = make(settings, argv=make_argv(settings))
        checkpoint = str(Path(settings.out) / "checkpoint.safetensors")
        if code != 0 or not Path(checkpoint).is_file():
            raise Interrupted(code or 130)
    record = {**asdict(cell), "name": cell.name, "group": cell.group, "checkpoint": checkpoint,
              **score(cell, checkpoint, plan, report)}
    record["wall_s"] = round(time.perf_counter() - started, 1)
    return record


# ---------------------------------------------------------------- the ledger: resume, refuse other settings

def recorded_plan(plan: Plan) -> dict[str, Any]:
    values = {k: v for k, v in asdict(plan).items() if k not in NOT_RECORDED}
    for key in ("data", "from_ckpt", "split", "val_split", "cls_data", "cls_from"):
        if values.get(key) is not None and Path(values[key]).exists():
            values[key] = str(Path(values[key]).resolve())
    return json.loads(json.dumps(values))  # tuples -> lists, as read back


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in dict.fromkeys([*old, *new]):
        if key == "extra":
            why = _difference(old.get(key) or {}, new.get(key) or {})
            if why:
                return why
        elif old.get(key) != new.get(key):
            option = "--from" if key == "from_ckpt" else "--" + key.replace("_", "-")
            return f"{option} {old.get(key)}, not {new.get(key)}"
    return None


def open_ledger(report: Path, kind: str, plan: Plan, force: bool) -> dict[str, Any]:
    """The REPORT's ledger: its finished runs when it was written by this code with these settings; a
    REPORT of another code version or settings is refused (--force starts over)."""
    path = report / LEDGER
    new = {"format": kind, "code_version": code_version(), "settings": recorded_plan(plan), "runs": {}}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {"format": "unreadable"}
        why = None
        if old.get("format") != kind:
            why = f"is a {old.get('format')} report, not {kind}"
        elif old.get("code_version") != new["code_version"]:
            why = f"was written by code version {old.get('code_version')}, this is {new['code_version']}"
        elif (diff := _difference(old.get("settings") or {}, new["settings"])) is not None:
            why = f"was written with {diff}"
        if why is None:
            return old
        if not force:
            raise UsageError(f"--out {report} {why}; rerun with its settings, choose another --out, or add "
                             "--force to start over")
    elif report.is_dir() and any(report.iterdir()) and not force:
        raise UsageError(f"--out {report} is a non-empty folder that is not a {kind} report; choose another")
    for name in OWN:
        target = report / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    report.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(new, indent=2) + "\n")
    return new


def run_cells(cells: list[Cell], plan: Plan, report: Path, ledger: dict[str, Any],
              runner: Callable[[Cell], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every cell the ledger has not finished, recording each as it finishes."""
    todo = [c for c in cells if c.name not in ledger["runs"]]
    if len(todo) < len(cells):
        print(f"{report}: {len(cells) - len(todo)} of {len(cells)} runs already finished", file=sys.stderr)
    for i, cell in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {cell.name}", file=sys.stderr)
        ledger["runs"][cell.name] = (runner or (lambda c: run_cell(c, plan, report)))(cell)
        atomic_write_text(report / LEDGER, json.dumps(ledger, indent=2) + "\n")
    return ledger


# ---------------------------------------------------------------- checks

def check_plan_inputs(plan: Plan, report: Path) -> None:
    """--from is a tracker of the backbone and width; val is not trained on; outputs hold no input."""
    check_same_net("--from", plan.from_ckpt, tracker_checkpoint(plan.from_ckpt), plan.backbone, plan.width)
    check_disjoint(plan.data, plan.split, plan.val_split, f"--split {plan.split}")
    check_sequences(load_sequences(plan.data, plan.val_split))
    check_output_dir(report, "--out", inputs=[plan.data, plan.from_ckpt, plan.split, plan.val_split,
                                              plan.cls_data, plan.cls_from])


def check_budgets(budgets: list[float | str], backbone: str, width: float) -> None:
    """A budget the backbone cannot reach is one line stating the range."""
    costs = reference_costs(backbone, width)
    for budget in budgets:
        if budget != "min":
            check_budget(costs, float(budget), backbone, width)


def check_sources(sources: list[str], valid: tuple[str, ...] = MASK_SOURCES) -> None:
    """An unknown mask source is one line listing the valid ones."""
    for source in sources:
        if source not in valid:
            raise UsageError(f"--masks {source!r} is unknown; choose from {', '.join(valid)}")


def check_cls(sources: list[str], budgets: list[float | str], plan: Plan) -> None:
    """mixbin-cls needs --cls-data, or a shipped classification mask at each budget."""
    if "mixbin-cls" not in sources or plan.cls_data is not None:
        return
    costs = reference_costs(plan.backbone, plan.width)
    for budget in budgets:
        if budget == "min" or float(budget) >= 1 or float(budget) <= costs.min_budget:
            continue
        if shipped_cls_mask(plan.backbone, plan.width, float(budget)) is None:
            raise UsageError(f"--masks mixbin-cls: no shipped classification mask for {plan.backbone} width "
                             f"{plan.width:g} at budget {budget:g}; give --cls-data ROOT to search one")


# ---------------------------------------------------------------- table and plot

def groups(ledger: dict[str, Any], cells: list[Cell]) -> list[dict[str, Any]]:
    """One row per (budget, source[, init]): seeds pooled per sequence, 95% bootstrap interval over them."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        rows.setdefault(cell.group, []).append(ledger["runs"][cell.name])
    out = []
    for name, runs in rows.items():
        names = sorted(set.intersection(*(set(r["per_sequence_auc"]) for r in runs)))
        per_seq = [float(np.mean([r["per_sequence_auc"][n] for r in runs])) for n in names]
        out.append({"row": name, "budget": runs[0]["budget"], "source": runs[0]["source"],
                    "init": runs[0].get("init", "fp"), "seeds": [r["seed"] for r in runs],
                    "auc": float(np.mean(per_seq)), "auc_ci95": bootstrap_ci(per_seq),
                    "auc_per_seed": [r["auc"] for r in runs],
                    "budget_achieved": float(np.mean([r["budget_achieved"] for r in runs])),
                    "gops": float(np.mean([r["ops"] for r in runs])) / 1e9,
                    "latency_ms": float(np.mean([r["latency_ms"] for r in runs])),
                    "per_sequence_auc": dict(zip(names, per_seq, strict=True))})
    return out


def pareto(rows: list[dict[str, Any]], x: str) -> list[bool]:
    """True where no other row is as good on both axes (lower ``x``, higher AUC) and better on one."""
    def beaten(r: dict[str, Any]) -> bool:
        return any(o[x] <= r[x] and o["auc"] >= r["auc"] and (o[x] < r[x] or o["auc"] > r["auc"])
                   for o in rows)

    return [not beaten(r) for r in rows]


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    """The table: one row per (budget, source), AUC with its interval, OPs budget, latency."""
    front = pareto(rows, "latency_ms")
    head = "| row | budget (achieved) | source | seeds | AUC [95% CI] | GOPs | latency ms/frame | front |"
    lines = [f"# {title}", "", head, "|---|---|---|---|---|---|---|---|"]
    for r, on in zip(rows, front, strict=True):
        lines.append(f"| {r['row']} | {r['budget']} ({r['budget_achieved']:.3f}) | {r['source']} | "
                     f"{len(r['seeds'])} | {format_ci(r['auc'], r['auc_ci95'])} | {r['gops']:.3f} | "
                     f"{r['latency_ms']:.1f} | {'*' if on else ''} |")
    return "\n".join(lines) + "\n"


def plot_front(rows: list[dict[str, Any]], path: Path) -> None:
    """AUC with interval bars against measured latency per frame and against OPs, Pareto front marked."""
    from matplotlib.figure import Figure

    from backbones.cli import atomic_path

    fig = Figure(figsize=(11, 4.5))
    sources = sorted({r["source"] + ("+cls" if r["init"] == "cls" else "") for r in rows})
    colours = {s: f"C{i % 10}" for i, s in enumerate(sources)}
    axes = (("latency_ms", "measured latency per frame (ms, packed)"), ("gops", "GOPs per search image"))
    for ax, (x, label) in zip(fig.subplots(1, 2), axes, strict=True):
        for r in rows:
            key = r["source"] + ("+cls" if r["init"] == "cls" else "")
            low, high = r["auc_ci95"] or (r["auc"], r["auc"])
            ax.errorbar(r[x], r["auc"], yerr=[[r["auc"] - low], [high - r["auc"]]], fmt="o", capsize=3,
                        color=colours[key], label=key)
        front = sorted((r for r, on in zip(rows, pareto(rows, x), strict=True) if on), key=lambda r: r[x])
        ax.step([r[x] for r in front], [r["auc"] for r in front], where="post", color="k", lw=1,
                ls="--", label="Pareto front")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set(xlabel=label, ylabel="AUC (val, 95% CI)")
        ax.grid(True, alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_outputs(report: Path, rows: list[dict[str, Any]], ledger: dict[str, Any], title: str) -> str:
    """table.md, table.json and front.png; returns the markdown."""
    table = markdown(rows, title)
    atomic_write_text(report / "table.md", table)
    atomic_write_text(report / "table.json", json.dumps({"code_version": ledger["code_version"],
                                                         "settings": ledger["settings"], "rows": rows},
                                                        indent=2) + "\n")
    plot_front(rows, report / "front.png")
    return table


# ---------------------------------------------------------------- CLI

def add_plan_args(parser: argparse.ArgumentParser) -> None:
    """Options every experiment shares (eval.sweep, eval.transfer)."""
    parser.add_argument("--backbone", default="resnet", help="backbone (default resnet; must be --from's)")
    parser.add_argument("--width", type=float_range(0, 4, low_open=True), default=None, metavar="W",
                        help="width (default --from's)")
    parser.add_argument("--data", required=True, metavar="ROOT", help="tracking data root")
    parser.add_argument("--from", dest="from_ckpt", required=True, metavar="FP_CKPT",
                        help="the FP tracker every tracker is fine-tuned from (and distilled from)")
    parser.add_argument("--out", required=True, metavar="REPORT", help="report folder (resumed when rerun)")
    parser.add_argument("--seeds", type=int_range(0, 2**32 - 1), nargs="+", default=[0], metavar="S",
                        help="fine-tuning (and random-mask, search) seeds (default 0)")
    parser.add_argument("--split", metavar="FILE",
                        help="training sequences (default ROOT/splits/train.txt); the probes of the tracking "
                             "mask sources are held out of it by sequence")
    parser.add_argument("--val-split", metavar="FILE", help="scoring sequences (default ROOT/splits/val.txt)")
    parser.add_argument("--cls-data", metavar="ROOT", help="ImageFolder root for mixbin-cls searches")
    parser.add_argument("--cls-from", metavar="CKPT",
                        help="FP classifier checkpoint (where mixbin-cls searches start)")
    parser.add_argument("--iterations", type=positive_int, default=300, metavar="N",
                        help="fine-tuning iterations of every tracker (default 300, the zoo's)")
    parser.add_argument("--search-iterations", type=positive_int, default=300, metavar="N",
                        help="MixBin search iterations (default 300)")
    parser.add_argument("--batch-size", type=int_range(1, 1024), default=8, metavar="N",
                        help="pairs per step (default 8)")
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                        help="score at most N frames of each val sequence (quick runs; default all)")
    parser.add_argument("--latency-frames", type=int_range(2, 10_000), default=30, metavar="N",
                        help="frames of the built-in sample timed per tracker (default 30)")
    parser.add_argument("--force", action="store_true", help="start REPORT over")
    add_device_arg(parser, default="cpu")
    add_threads_arg(parser)
    add_workers_arg(parser)


def plan_from_args(args: argparse.Namespace, extra: dict[str, Any]) -> Plan:
    """The Plan of parsed options (width from --from; default splits under ROOT)."""
    backbone, width = tracker_checkpoint(args.from_ckpt)
    check_same_net("--from", args.from_ckpt, (backbone, width), args.backbone, args.width)
    val = args.val_split or str(Path(args.data) / "splits" / "val.txt")
    return Plan(backbone=backbone, width=width, data=args.data, from_ckpt=args.from_ckpt,
                split=args.split or default_split(args.data), val_split=val, iterations=args.iterations,
                search_iterations=args.search_iterations, batch_size=args.batch_size,
                max_frames=args.max_frames, latency_frames=args.latency_frames, cls_data=args.cls_data,
                cls_from=args.cls_from, extra=extra, device=args.device, threads=args.threads,
                workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m eval.sweep", description=(
        "Budget sweep: one tracker per (budget, mask source, seed), fine-tuned from the FP tracker --from by "
        "mixbin.make with identical settings, scored on the val split (AUC with 95% bootstrap intervals), "
        "timed per frame (packed); writes REPORT/table.md, table.json and front.png. Rerun to resume."))
    parser.add_argument("--budgets", type=parse_budget_arg, nargs="+", required=True, metavar="B",
                        help="budgets, numbers in [min_budget, 1] or min (1.0: the FP tracker itself)")
    parser.add_argument("--masks", nargs="+", required=True, metavar="SOURCE",
                        help=f"mask sources: {', '.join(MASK_SOURCES)}")
    add_plan_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_sources(args.masks)
    plan = plan_from_args(args, {"budgets": args.budgets, "masks": args.masks, "seeds": args.seeds})
    check_budgets(args.budgets, plan.backbone, plan.width)
    check_cls(args.masks, args.budgets, plan)
    report = Path(args.out)
    check_plan_inputs(plan, report)
    apply_threads(plan.threads)
    ledger = open_ledger(report, FORMAT, plan, args.force)
    cells = cells_for(args.budgets, args.masks, args.seeds)
    try:
        run_cells(cells, plan, report, ledger)
    except Interrupted as stop:
        print(f"interrupted; {len(ledger['runs'])} of {len(cells)} runs finished in {report}; rerun to "
              "resume", file=sys.stderr)
        return stop.code
    print(write_outputs(report, groups(ledger, cells), ledger, "Budget sweep"), end="")
    print(f"report written to {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
