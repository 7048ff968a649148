"""One command from a budget to a tracker: choose a mask at that budget, then fine-tune the FP tracker with
it by the zoo's recipe (models/README.md: Adam 1e-3 -> 1e-5, no weight decay, distillation from the FP
tracker's response maps, batch 8) through ``tracker.train``'s ``train``.

    python -m mixbin.make --budget 0.3 --data ../shared/data/tracking \\
        --from runs/resnet_fp/checkpoint.safetensors --out runs/make_b0.3

RUN holds ``make.json`` (the run's settings), ``mask.json`` (the chosen mask with its provenance),
``finetune/`` (the ``tracker.train`` run, resumable) and, when done, ``checkpoint.safetensors`` +
``checkpoint.json`` (what ``demo.py --checkpoint`` and ``eval.benchmark --tracker`` load). A rerun of an
interrupted RUN keeps a finished mask and resumes the fine-tune; other settings on the same RUN are refused.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbones.checkpoint import CheckpointError, checkpoint_files, complete_versions, read_checkpoint
from backbones.cli import (
    ArgumentParser,
    UsageError,
    add_device_arg,
    add_seed_arg,
    add_threads_arg,
    add_workers_arg,
    apply_threads,
    atomic_path,
    atomic_write_text,
    check_output_dir,
    code_version,
    float_range,
    int_range,
    positive_int,
    resolve_device,
    run_cli,
)
from backbones.cost import UnitCosts, reference_costs
from backbones.mask import Mask, MaskError, load_mask, save_mask, uniform_mask, with_budget
from backbones.registry import list_backbones
from mixbin.common import check_budget
from mixbin.provenance import command_line, seed_everything
from mixbin.select import unused_budget
from tracker.sequences import load_sequences

PROG = "python -m mixbin.make"
SEARCHES = ("mixbin-tracking", "mixbin-cls")
BASELINES = ("random", "iterative", "sensitivity", "first", "last")
MASK_SOURCES = (*SEARCHES, *BASELINES)
PROBED = ("mixbin-tracking", "iterative", "sensitivity")  # need the tracking task and its probe sequences
FORMAT = "b2track-make/1"
SETTINGS_FILE, MASK_FILE, FINETUNE_DIR = "make.json", "mask.json", "finetune"
CHECKPOINT, SIDECAR = "checkpoint.safetensors", "checkpoint.json"
DEFAULT_ITERATIONS = 300
DEFAULT_SEARCH_ITERATIONS = 300
RECIPE = {"optimizer": "adam", "lr": 1e-3, "lr_end": 1e-5, "weight_decay": 0.0}  # the zoo's fine-tune
CLS_INPUT, CLS_BATCH = 96, 32  # classification search: CIFAR-10 upsampled, as the shipped masks were searched
MAX_BATCH = 1024


@dataclass
class MakeSettings:
    """Everything a mixbin.make run depends on; all but out/device/threads/workers define the run."""

    budget: float | str  # a number in [min_budget, 1], or 'min' (the all-binary mask)
    data: str
    out: str
    from_ckpt: str  # the FP tracker: the fine-tune's start and its distillation teacher
    mask_source: str = "mixbin-tracking"
    split: str | None = None
    backbone: str = "resnet"
    width: float = 1.0
    iterations: int = DEFAULT_ITERATIONS
    search_iterations: int = DEFAULT_SEARCH_ITERATIONS
    batch_size: int = 8
    seed: int = 0
    init_from: str | None = None  # start the fine-tune here instead of from_ckpt (e.g. a classifier)
    cls_data: str | None = None
    cls_from: str | None = None
    device: str = "auto"
    threads: int = 0
    workers: int = 0


NOT_DEFINING = ("out", "device", "threads", "workers")
PATH_FIELDS = ("data", "from_ckpt", "split", "init_from", "cls_data", "cls_from")
FLAGS = {"from_ckpt": "--from"}


def flag(name: str) -> str:
    """The command-line option of a settings field."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


# ---------------------------------------------------------------- checks before any work

def make_argv(settings: MakeSettings) -> list[str]:
    """The mixbin.make arguments that reproduce ``settings`` (what a run made by eval.sweep records as its
    command, so every mask and checkpoint names a command that remakes it)."""
    args: list[str] = []
    for f in dataclasses.fields(MakeSettings):
        value = getattr(settings, f.name)
        if value is None or (f.name not in ("budget", "data", "out", "from_ckpt") and value == f.default):
            continue
        args += [flag(f.name), str(value)]
    return args


def parse_budget_arg(text: str) -> float | str:
    """--budget: 'min' or a finite number (its range is checked once the backbone is known)."""
    if text.strip().lower() == "min":
        return "min"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'min', got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number or 'min', got {text!r}")
    return value


def check_backbone(name: str) -> None:
    if name not in list_backbones():
        raise UsageError(f"--backbone {name!r} is unknown; choose one of {', '.join(list_backbones())}")


def is_mask_file(source: str) -> bool:
    return source.endswith(".json")


def check_source(source: str) -> None:
    """An unknown --mask-source is one line listing the valid ones."""
    if source in MASK_SOURCES:
        return
    if is_mask_file(source):
        if not Path(source).is_file():
            raise UsageError(f"--mask-source {source}: mask file not found")
        return
    raise UsageError(f"--mask-source {source!r} is unknown; choose one of {', '.join(MASK_SOURCES)}, "
                     "or a MASK.json file")


def tracker_checkpoint(path: str, option: str = "--from") -> tuple[str, float]:
    """(backbone, width) of a tracker checkpoint; one line if it is missing, broken or not a tracker."""
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:
        raise UsageError(f"{option} {path}: {err}") from None
    if ckpt.kind != "tracker":
        raise UsageError(f"{option} {path}: is a {ckpt.kind} checkpoint, not a tracker (give an FP tracker, "
                         "e.g. a tracker.train run's checkpoint.safetensors)")
    return ckpt.mask.backbone, float(ckpt.mask.width)


def check_same_net(option: str, path: str, found: tuple[str, float], backbone: str | None,
                   width: float | None) -> None:
    """A checkpoint of another backbone or width than asked is one line naming both."""
    if (backbone is not None and found[0] != backbone) or (
            width is not None and not math.isclose(found[1], width, rel_tol=1e-9)):
        raise UsageError(f"{option} {path}: is a checkpoint of {found[0]} width {found[1]:g}, but this run "
                         f"asks for {backbone or found[0]} width {found[1] if width is None else width:g}")


def default_from(backbone: str, width: float) -> str:
    """Without --from: the zoo's b1.0 FP tracker, when it is of this backbone and width."""
    from tracker.zoo import find_zoo

    try:
        path = str(find_zoo(1.0, backbone=backbone))
    except UsageError:
        raise UsageError(f"no FP tracker of {backbone} in the zoo: give --from CKPT") from None
    found = tracker_checkpoint(path, "the zoo's b1.0")
    if not math.isclose(found[1], width, rel_tol=1e-9):
        raise UsageError(f"the zoo's FP tracker {path} is {backbone} width {found[1]:g}, not {width:g}: "
                         "give --from CKPT")
    return path


def default_split(data: str) -> str | None:
    """ROOT/splits/train.txt when it exists, else None (every sequence under ROOT)."""
    path = Path(data) / "splits" / "train.txt"
    return str(path) if path.is_file() else None


def check_probe_split(settings: MakeSettings, found: int) -> None:
    """Whole train sequences are held out (the tracking mask sources' probes, never fine-tuned on):
    at least 2 are needed."""
    from tracker.sequences import HELD_OUT_EVERY

    if found < 2:
        where = f"--split {settings.split}" if settings.split else f"--data {settings.data}"
        raise UsageError(f"{where}: {found} sequence(s); mixbin.make needs at least 2 train sequences "
                         f"(one in {HELD_OUT_EVERY}, at least one, is held out as the probe set)")


def check_disjoint(data: str, train_split: str | None, val_split: str | Path, option: str) -> None:
    """Training sequences that are also scoring (val) sequences are refused, by sequence name."""
    val = {s.name for s in load_sequences(data, val_split)}
    both = sorted(val & {s.name for s in load_sequences(data, train_split)})
    if both:
        raise UsageError(f"{option} shares sequences with the val split {val_split} ({', '.join(both[:3])}"
                         f"{' ...' if len(both) > 3 else ''}): val is for scoring only")


def target_of(settings: MakeSettings, costs: UnitCosts) -> float:
    """The numeric budget: 'min' is the all-binary budget of the backbone and width."""
    return costs.min_budget if settings.budget == "min" else float(settings.budget)


def check_settings(settings: MakeSettings) -> UnitCosts:
    """Every check that needs no training; returns the backbone's reference costs."""
    check_backbone(settings.backbone)
    check_source(settings.mask_source)
    costs = reference_costs(settings.backbone, settings.width)
    if settings.budget != "min":
        check_budget(costs, float(settings.budget), settings.backbone, settings.width)
    if not Path(settings.data).is_dir():
        raise UsageError(f"--data {settings.data}: tracking data root not found")
    found = len(load_sequences(settings.data, settings.split))  # checks the split and its sequences
    check_probe_split(settings, found)
    val = Path(settings.data) / "splits" / "val.txt"
    if val.is_file():
        check_disjoint(settings.data, settings.split, val, f"--split {settings.split}")
    _check_inputs(settings)
    return costs


def _check_inputs(settings: MakeSettings) -> None:
    if settings.cls_data is not None and not Path(settings.cls_data).is_dir():
        raise UsageError(f"--cls-data {settings.cls_data}: classification data root not found")
    for option, path in (("--init-from", settings.init_from), ("--cls-from", settings.cls_from)):
        if path is not None:
            try:
                ckpt = read_checkpoint(path)
            except CheckpointError as err:
                raise UsageError(f"{option} {path}: {err}") from None
            check_same_net(option, path, (ckpt.mask.backbone, float(ckpt.mask.width)), settings.backbone,
                           settings.width)
    checkpoints = (settings.from_ckpt, settings.init_from, settings.cls_from)
    inputs = [settings.data, settings.split, settings.cls_data,
              settings.mask_source if is_mask_file(settings.mask_source) else None,
              *(f for p in checkpoints for f in checkpoint_files(p))]
    check_output_dir(settings.out, "--out", inputs=inputs)


def uniform_target(settings: MakeSettings, costs: UnitCosts) -> str | None:
    """'binary' at the all-binary budget, 'fp' at 1: every mask source gives that mask, no search runs."""
    target = target_of(settings, costs)
    if settings.budget == "min" or target <= costs.min_budget + 1e-12:
        return "binary"
    return "fp" if target >= 1.0 else None


# ---------------------------------------------------------------- the run's settings record

def recorded(settings: MakeSettings) -> dict[str, Any]:
    """The run-defining settings as make.json records them (paths absolute)."""
    values = {}
    for f in dataclasses.fields(MakeSettings):
        if f.name in NOT_DEFINING:
            continue
        value = getattr(settings, f.name)
        is_path = f.name in PATH_FIELDS or (f.name == "mask_source" and is_mask_file(value))
        if is_path and value is not None and Path(value).exists():
            value = str(Path(value).resolve())
        values[f.name] = value
    return values


def settings_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """'--budget 0.3, not 0.5' for the first setting that differs, else None."""
    for name in dict.fromkeys([*old, *new]):
        a, b = old.get(name), new.get(name)
        same = a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                          and not isinstance(a, bool) and math.isclose(a, b, rel_tol=1e-12))
        if not same:
            return f"{flag(name)} {a}, not {b}"
    return None


def clear_run(run: Path) -> None:
    """--force: remove what an earlier mixbin.make wrote into RUN (only its own files)."""
    for name in (SETTINGS_FILE, MASK_FILE, CHECKPOINT, SIDECAR):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / FINETUNE_DIR, ignore_errors=True)


def read_recorded(path: Path) -> dict[str, Any]:
    """The settings an earlier run recorded in make.json ({'format': 'unreadable'} when it is damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return {"format": "unreadable"}


def claim_run(settings: MakeSettings, force: bool = False) -> None:
    """Record the settings in RUN/make.json, or check them against the ones recorded (--force: start over)."""
    run = Path(settings.out)
    path = run / SETTINGS_FILE
    new = recorded(settings)
    if path.is_file():
        why = settings_difference(read_recorded(path), new)
        if why is None:
            return
        if not force:
            raise UsageError(f"--out {run} was made with {why}; rerun with its settings, choose another "
                             "--out, or add --force to start over")
    elif run.is_dir() and any(run.iterdir()) and not force:
        raise UsageError(f"--out {run} is a non-empty folder that is not a mixbin.make run; choose another")
    clear_run(run)
    atomic_write_text(path, json.dumps({"format": FORMAT, "settings": new, "code_version": code_version()},
                                       indent=2) + "\n")


# ---------------------------------------------------------------- choosing the mask

def tracking_task(settings: MakeSettings):
    """The tracking task on the run's train sequences (some held out as the probe set), batch of the run."""
    from mixbin.tracking import TrackingTask

    return TrackingTask(settings.data, settings.backbone, settings.width, batch_size=settings.batch_size,
                        device=resolve_device(settings.device), seed=settings.seed, workers=settings.workers,
                        split=settings.split)


def start_model(task, settings: MakeSettings, weights: str | None):
    """The task's all-FP model, loaded from ``weights`` (its backbone.* tensors, and a head that fits)."""
    from backbones.checkpoint import load_weights

    seed_everything(settings.seed)
    model = task.make_model(uniform_mask(settings.backbone, settings.width, "fp"))
    if weights is not None:
        load_weights(model, weights)
    return model


def run_search(task, model, costs: UnitCosts, target: float, settings: MakeSettings) -> dict[str, Any]:
    """MixBin's gated search (mixbin.search) on ``task``; the states and the provenance of its gates."""
    from mixbin.search import SearchSettings, mixbin_search

    search = SearchSettings(iterations=settings.search_iterations)
    started = time.perf_counter()
    result = mixbin_search(task, model, costs, target, search, settings.seed)
    return {"states": result.states, "method": "mixbin", "search": dataclasses.asdict(search),
            "gates": result.gates, "psi": result.psi, "soft_budget": result.soft_budget,
            "gate_agreement": result.gate_agreement, "final_threshold": round(result.threshold, 6),
            "search_time_s": round(time.perf_counter() - started, 2), **task.describe()}


def shipped_cls_mask(backbone: str, width: float, target: float) -> Path | None:
    """A shipped MixBin mask searched on classification data for exactly this backbone, width and target."""
    from tracker.shipped import shipped_dir

    for path in sorted(shipped_dir("masks").glob("*.json")):
        try:
            mask = load_mask(path)
        except MaskError:
            continue
        search, budget = mask.search or {}, mask.budget or {}
        if (mask.backbone == backbone and math.isclose(mask.width, width, rel_tol=1e-9)
                and search.get("method") == "mixbin" and search.get("task") == "classification"
                and isinstance(budget.get("target"), (int, float))
                and math.isclose(budget["target"], target, rel_tol=1e-9)):
            return path
    return None


def cls_mask(settings: MakeSettings, costs: UnitCosts, target: float) -> dict[str, Any]:
    """mixbin-cls: MixBin searched on --cls-data (from --cls-from, else --from's backbone weights), or
    without --cls-data the shipped CIFAR-10 mask of exactly this backbone, width and budget."""
    if settings.cls_data is None:
        path = shipped_cls_mask(settings.backbone, settings.width, target)
        if path is None:
            raise UsageError(f"--mask-source mixbin-cls: no shipped classification mask for "
                             f"{settings.backbone} width {settings.width:g} at budget {target:g}; give "
                             "--cls-data ROOT to search one")
        return {**file_mask(str(path), settings, costs, target), "method": "mixbin", "shipped": str(path)}
    from mixbin.task import ClassificationTask

    task = ClassificationTask(settings.cls_data, settings.backbone, settings.width, input_size=CLS_INPUT,
                              batch_size=CLS_BATCH, device=resolve_device(settings.device),
                              seed=settings.seed, workers=settings.workers)
    model = start_model(task, settings, settings.cls_from or settings.from_ckpt)
    return {**run_search(task, model, costs, target, settings), "search_from": settings.cls_from or
            settings.from_ckpt}


def file_mask(path: str, settings: MakeSettings, costs: UnitCosts, target: float) -> dict[str, Any]:
    """A given mask: of this backbone and width, within the budget."""
    try:
        mask = load_mask(path)
    except MaskError as err:
        raise UsageError(str(err)) from None
    if mask.backbone != settings.backbone or not math.isclose(mask.width, settings.width, rel_tol=1e-9):
        raise UsageError(f"--mask-source {path}: is a mask of {mask.backbone} width {mask.width:g}, not "
                         f"{settings.backbone} width {settings.width:g}")
    achieved = costs.budget(mask.units)
    if achieved > target + 1e-9:
        raise UsageError(f"--mask-source {path}: costs budget {achieved:.4f}, over --budget {target:g}")
    return {"states": dict(mask.units), "method": "file", "mask_file": str(Path(path).resolve()),
            "mask_search": mask.search}


def probed_mask(source: str, settings: MakeSettings, costs: UnitCosts, target: float) -> dict[str, Any]:
    """mixbin-tracking, iterative, sensitivity: on the tracking task's train sequences, probes held out."""
    from mixbin.baseline import iterative_mask, sensitivity_mask

    task = tracking_task(settings)
    model = start_model(task, settings, settings.from_ckpt)
    if source == "mixbin-tracking":
        return run_search(task, model, costs, target, settings)
    if source == "iterative":
        states, trace = iterative_mask(task, model, costs, target)
        extra: dict[str, Any] = {"binarized_order": [n for n, _ in trace],
                                 "loss_increase_per_gops": dict(trace)}
    else:
        states, delta = sensitivity_mask(task, model, costs, target)
        extra = {"loss_increase": delta}
    return {"states": states, "method": source, **extra, **task.describe()}


def select_mask(settings: MakeSettings, costs: UnitCosts, target: float) -> dict[str, Any]:
    """The states (and provenance) of the run's mask source at ``target``."""
    from mixbin.baseline import first_mask, last_mask, random_mask

    source = settings.mask_source
    if is_mask_file(source):
        return file_mask(source, settings, costs, target)
    uniform = uniform_target(settings, costs)
    if uniform is not None:
        return {"states": dict(uniform_mask(settings.backbone, settings.width, uniform).units),
                "method": f"all-{uniform}", "note": f"at this budget every mask source gives all-{uniform}"}
    if source == "mixbin-cls":
        return cls_mask(settings, costs, target)
    if source in PROBED:
        return probed_mask(source, settings, costs, target)
    greedy = {"random": lambda: random_mask(costs, target, settings.seed),
              "first": lambda: first_mask(costs, target), "last": lambda: last_mask(costs, target)}
    return {"states": greedy[source](), "method": source}


def choose_mask(settings: MakeSettings, costs: UnitCosts, argv: list[str] | None = None) -> Mask:
    """RUN/mask.json: kept when a finished earlier session wrote it, else chosen now and written."""
    path = Path(settings.out) / MASK_FILE
    if path.is_file():
        print(f"{path}: mask already chosen, kept", file=sys.stderr)
        return load_mask(path)
    target = target_of(settings, costs)
    started = time.perf_counter()
    chosen = select_mask(settings, costs, target)
    states = chosen.pop("states")
    provenance = {**chosen, "mask_source": settings.mask_source, "seed": settings.seed,
                  "command": command_line("mixbin.make", argv), "code_version": code_version(),
                  "budget_unused": unused_budget(states, costs, target),
                  "wall_time_s": round(time.perf_counter() - started, 2)}
    budget = {"target": round(target, 6)}
    mask = with_budget(Mask(settings.backbone, settings.width, states, budget, provenance))
    return save_mask(mask, path)


# ---------------------------------------------------------------- fine-tuning

def finetune_config(settings: MakeSettings):
    """The zoo's fine-tune recipe as a ``tracker.train`` configuration in RUN/finetune; it trains without
    the held-out sequences (--hold-out), the probes of the tracking mask sources."""
    from tracker.config import TrainConfig

    run = Path(settings.out) / FINETUNE_DIR
    resume = bool(complete_versions(run, ())) or (run / CHECKPOINT).exists()
    return TrainConfig(backbone=settings.backbone, data=settings.data, iterations=settings.iterations,
                       out=str(run), width=settings.width, mask=str(Path(settings.out) / MASK_FILE),
                       split=settings.split, hold_out=True, batch_size=settings.batch_size,
                       init_from=settings.init_from or settings.from_ckpt, teacher=settings.from_ckpt,
                       resume=resume, save_every=max(1, min(100, settings.iterations)),
                       device=settings.device, seed=settings.seed, workers=settings.workers,
                       threads=settings.threads, **RECIPE)


def publish(run: Path) -> Path:
    """Copy the finished fine-tune's checkpoint to RUN/checkpoint.safetensors + .json (weights first)."""
    for name in (CHECKPOINT, SIDECAR):
        with atomic_path(run / name) as tmp:
            shutil.copyfile(run / FINETUNE_DIR / name, tmp)
    return run / CHECKPOINT


def finished(settings: MakeSettings) -> bool:
    """Whether RUN holds the finished tracker of these settings."""
    path = Path(settings.out) / CHECKPOINT
    if not path.is_file():
        return False
    try:
        return read_checkpoint(path, kind="tracker").sidecar.get("iterations") == settings.iterations
    except CheckpointError:
        return False


def make(settings: MakeSettings, force: bool = False, argv: list[str] | None = None,
         stop_at: int | None = None) -> int:
    """Check, claim RUN, choose (or keep) the mask, fine-tune (or resume), publish; returns the exit code.

    ``stop_at`` ends the fine-tune early at that iteration (as an interruption would; for tests)."""
    from tracker.train import train

    costs = check_settings(settings)
    claim_run(settings, force)
    apply_threads(settings.threads)
    if finished(settings):
        print(f"{settings.out} is finished: {Path(settings.out) / CHECKPOINT}", file=sys.stderr)
        return 0
    mask = choose_mask(settings, costs, argv)
    code = train(finetune_config(settings), stop_at=stop_at)
    run = Path(settings.out)
    done = read_checkpoint(run / FINETUNE_DIR / CHECKPOINT, kind="tracker").sidecar.get("iterations")
    if code != 0 or done != settings.iterations:
        return code
    path = publish(run)
    fp = [n for n, s in mask.units.items() if s == "fp"]
    print(f"wrote {path}: {mask.backbone} width {mask.width:g}, budget {mask.budget['achieved']:.4f} "
          f"(target {mask.budget['target']:g}), FP units {', '.join(fp) or 'none'}, {settings.iterations} "
          f"fine-tuning iterations", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=(
        "From a budget to a tracker in one command: choose which units stay full precision at --budget "
        "(--mask-source), then fine-tune the FP tracker --from with that mask by the zoo's recipe (Adam "
        "1e-3 -> 1e-5, no weight decay, distillation from the FP tracker's response maps). Writes "
        "RUN/mask.json and RUN/checkpoint.safetensors + .json (for demo.py --checkpoint and eval.benchmark "
        "--tracker). Rerun the same command to resume an interrupted run."))
    parser.add_argument("--budget", required=True, type=parse_budget_arg, metavar="B|min",
                        help="fraction of the all-FP OPs allowed (at the 255x255 reference input), in "
                             "[min_budget, 1] of the backbone and width (python -m backbones.cost), or min "
                             "(all units binary)")
    parser.add_argument("--data", required=True, metavar="ROOT", help="tracking data root")
    parser.add_argument("--out", required=True, metavar="RUN",
                        help="run folder (created; resumed when rerun)")
    parser.add_argument("--from", dest="from_ckpt", metavar="CKPT",
                        help="FP tracker checkpoint (.safetensors): the fine-tune's start and teacher, and "
                             "the start of tracking-data searches and probes; sets --backbone and --width "
                             "(default: the zoo's b1.0 model)")
    parser.add_argument("--mask-source", default="mixbin-tracking", metavar="SOURCE",
                        help="mixbin-tracking (MixBin search on the train sequences, probes held out by "
                             "sequence), mixbin-cls (MixBin on --cls-data, or the shipped CIFAR-10 mask of "
                             "exactly this backbone, width and budget), a baseline (random, iterative, "
                             "sensitivity, first, last; mixbin.baseline), or a MASK.json file "
                             "(default mixbin-tracking)")
    parser.add_argument("--split", metavar="FILE",
                        help="training sequences, relative to ROOT (default ROOT/splits/train.txt when it "
                             "exists, else every sequence); never the val split")
    parser.add_argument("--backbone", default=None, metavar="NAME",
                        help=f"backbone: {', '.join(list_backbones())} (default: --from's, else resnet)")
    parser.add_argument("--width", type=float_range(0, 4, low_open=True), default=None, metavar="W",
                        help="width multiplier (default: --from's, else 1.0)")
    parser.add_argument("--iterations", type=positive_int, default=DEFAULT_ITERATIONS, metavar="N",
                        help=f"fine-tuning iterations (default {DEFAULT_ITERATIONS}, the zoo's)")
    parser.add_argument("--search-iterations", type=positive_int, default=DEFAULT_SEARCH_ITERATIONS,
                        metavar="N", help=f"MixBin search iterations (default {DEFAULT_SEARCH_ITERATIONS})")
    parser.add_argument("--batch-size", type=int_range(1, MAX_BATCH), default=8, metavar="N",
                        help="pairs per step of search and fine-tune (default 8, the zoo's)")
    parser.add_argument("--init-from", metavar="CKPT",
                        help="start the fine-tune from this checkpoint instead of --from (e.g. a classifier: "
                             "its backbone weights); --from stays the teacher")
    parser.add_argument("--cls-data", metavar="ROOT", help="ImageFolder root for --mask-source mixbin-cls")
    parser.add_argument("--cls-from", metavar="CKPT",
                        help="classifier checkpoint the mixbin-cls search starts from (default: --from's "
                             "backbone weights)")
    parser.add_argument("--force", action="store_true",
                        help="start RUN over even when it was made with other settings")
    add_device_arg(parser)
    add_threads_arg(parser)
    add_workers_arg(parser)
    add_seed_arg(parser)
    return parser


def settings_from_args(args: argparse.Namespace) -> MakeSettings:
    """MakeSettings of parsed options: backbone and width from --from (which must agree with them)."""
    if args.from_ckpt is None:
        backbone, width = args.backbone or "resnet", 1.0 if args.width is None else args.width
        check_backbone(backbone)
        args.from_ckpt = default_from(backbone, width)
    found = tracker_checkpoint(args.from_ckpt)
    check_same_net("--from", args.from_ckpt, found, args.backbone, args.width)
    split = args.split if args.split is not None else default_split(args.data)
    return MakeSettings(budget=args.budget, data=args.data, out=args.out, from_ckpt=args.from_ckpt,
                        mask_source=args.mask_source, split=split, backbone=found[0], width=found[1],
                        iterations=args.iterations, search_iterations=args.search_iterations,
                        batch_size=args.batch_size, seed=args.seed, init_from=args.init_from,
                        cls_data=args.cls_data, cls_from=args.cls_from, device=args.device,
                        threads=args.threads, workers=args.workers)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_source(args.mask_source)
    return make(settings_from_args(args), args.force, argv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
