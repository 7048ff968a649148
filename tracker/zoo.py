"""The model zoo: trained trackers shipped in ``models/``, one per budget, loadable in one line.

A zoo model is a checkpoint ``<backbone>_b<budget>.safetensors`` plus its ``.json`` sidecar, where
``<budget>`` is the budget that was asked for (``resnet_b0.3``) or ``min`` (the all-binary mask,
``resnet_bmin``); the sidecar's ``mask.budget.achieved`` is the budget the mask really reaches.
The folder is ``models/`` at the repository root, or the one named by ``$B2TRACK_MODELS``::

    from tracker.zoo import load_zoo_tracker
    tracker = load_zoo_tracker(0.3)          # or "min", "1.0"; then tracker.init(...) / update(...)
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from backbones.checkpoint import CheckpointError, read_sidecar
from backbones.cli import UsageError
from tracker.shipped import shipped_dir
from tracker.siamfc import SiamFCTracker, load_tracker

DEFAULT_MODELS_DIR = shipped_dir("models")  # the repository's models/, or the installed package data
MODELS_ENV = "B2TRACK_MODELS"
DEFAULT_BACKBONE = "resnet"
NAME_PATTERN = re.compile(r"^(?P<backbone>[A-Za-z0-9]+)_b(?P<budget>min|\d+(?:\.\d+)?)$")
TRAIN_HINT = ("make one with: python -m mixbin.make --budget {budget} --data DATA --out runs/NAME (it "
              "chooses a mask at that budget and fine-tunes the zoo's FP tracker; see python -m mixbin.make "
              "--help), "
              "then run it with --checkpoint runs/NAME/checkpoint.safetensors")


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model: its name, checkpoint path, backbone, budget asked (float or 'min') and achieved."""

    name: str
    path: Path
    backbone: str
    budget: float | str
    achieved: float

    def label(self) -> str:
        """How the entry is listed to a user: the asked budget, and the achieved one when it differs."""
        if self.budget == "min":
            return f"min ({self.achieved:.3f})"
        return str(self.budget)


def zoo_dir(models_dir: str | Path | None = None) -> Path:
    """The zoo folder: ``models_dir`` if given, else ``$B2TRACK_MODELS``, else the shipped ``models/``."""
    if models_dir is not None:
        return Path(models_dir)
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else DEFAULT_MODELS_DIR


def parse_budget(value: str | float) -> float | str:
    """A budget as the user gives it: 'min' or a number in (0, 1]; anything else is a UsageError."""
    if isinstance(value, str) and value.strip().lower() == "min":
        return "min"
    try:
        budget = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"budget must be a number in (0, 1] or 'min', got {value!r}") from None
    if not math.isfinite(budget) or not 0 < budget <= 1:
        raise UsageError(f"budget must be a number in (0, 1] or 'min', got {value!r}")
    return budget


def _achieved(path: Path) -> float:
    """The achieved budget recorded in a checkpoint's sidecar (``mask.budget.achieved``)."""
    meta = read_sidecar(path)
    budget = meta["mask"].get("budget") if isinstance(meta["mask"], dict) else None
    achieved = budget.get("achieved") if isinstance(budget, dict) else None
    if isinstance(achieved, bool) or not isinstance(achieved, (int, float)) or not 0 < achieved <= 1:
        raise CheckpointError(f"zoo model {path.name}: its sidecar's mask.budget.achieved must be a number "
                              f"in (0, 1], got {achieved!r}")
    return float(achieved)


def _scan(folder: Path) -> tuple[list[ZooEntry], dict[str, CheckpointError]]:
    """The readable zoo entries in ``folder``, and the error of each unreadable one by file stem."""
    entries, broken = [], {}
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        match = NAME_PATTERN.match(path.stem)
        if not match:
            continue
        asked = match["budget"]
        budget: float | str = "min" if asked == "min" else float(asked)
        try:
            entries.append(ZooEntry(path.stem, path, match["backbone"], budget, _achieved(path)))
        except CheckpointError as err:
            broken[path.stem] = err
    return sorted(entries, key=lambda e: (-e.achieved, e.backbone != DEFAULT_BACKBONE, e.name)), broken


def list_zoo(models_dir: str | Path | None = None) -> list[ZooEntry]:
    """The readable shipped models, highest budget first; files not named ``<backbone>_b<budget>`` and
    models with a broken sidecar are left out (``find_zoo`` names the broken one when it is asked for)."""
    return _scan(zoo_dir(models_dir))[0]


def _matches(entry: ZooEntry, budget: float) -> bool:
    """Whether a zoo entry serves a numeric budget (to two decimals; a 'min' entry by its achieved one)."""
    shipped = entry.achieved if entry.budget == "min" else entry.budget
    return f"{shipped:.2f}" == f"{budget:.2f}"


def _named_for(stem: str, wanted: float | str, backbone: str | None) -> bool:
    """Whether a zoo file name ``<backbone>_b<budget>`` is the one asked for (by its name alone)."""
    match = NAME_PATTERN.match(stem)
    if match is None or backbone not in (None, match["backbone"]):
        return False
    if "min" in (wanted, match["budget"]):
        return wanted == match["budget"]
    return f"{float(match['budget']):.2f}" == f"{float(wanted):.2f}"


def find_zoo(budget: str | float, models_dir: str | Path | None = None, backbone: str | None = None) -> Path:
    """The checkpoint shipped for ``budget`` ('min' = the smallest shipped); UsageError listing them if none.

    Several backbones at one budget: ``backbone`` picks one, else resnet, else the first by name.
    """
    wanted = parse_budget(budget)
    readable, broken = _scan(zoo_dir(models_dir))
    entries = [e for e in readable if backbone is None or e.backbone == backbone]
    if wanted == "min":
        found = sorted(entries, key=lambda e: e.achieved)[:1]
    else:
        found = [e for e in entries if _matches(e, float(wanted))]
    if found:
        return found[0].path
    for stem, err in broken.items():
        if _named_for(stem, wanted, backbone):
            raise err  # the model asked for is there but unreadable: say why, not "not shipped"
    folder = zoo_dir(models_dir)
    which = f"{backbone} " if backbone else ""
    shipped = ", ".join(dict.fromkeys(e.label() for e in entries)) or "none"
    raise UsageError(f"no {which}model for budget {budget} in the zoo {folder} (shipped budgets: {shipped}); "
                     f"{TRAIN_HINT.format(budget=budget)}")


def load_zoo_tracker(budget: str | float, device: str = "cpu",
                     models_dir: str | Path | None = None) -> SiamFCTracker:
    """The one-line API: a ready ``SiamFCTracker`` for a shipped budget (e.g. 0.3 or 'min')."""
    return load_tracker(find_zoo(budget, models_dir), device=device)
