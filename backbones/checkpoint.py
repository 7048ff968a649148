"""Checkpoints, one schema for every kind (docs/design.md section 5): ``NAME.safetensors`` + ``NAME.json``.

The sidecar holds ``format``, ``kind`` (one of ``KINDS``), ``id``, backbone, width, mask, ``tensors`` (name
-> shape), ``environment`` (device, torch version) and the writer's own fields (training, metrics, ...).
The same ``id`` is in the weights' safetensors metadata, so weights and a sidecar from two different
writes are caught. Sidecars written before kinds existed load too: their kind is inferred from the
tensor names (a classifier has ``head.*`` tensors). A new kind is one more ``KINDS`` entry.

A training run commits each checkpoint as one unit (``commit_version``): every file is written into a
fresh folder, one rename makes it ``RUN/.checkpoints/<iteration>``, and only then are ``RUN/NAME.*``
replaced by copies. A reader that finds ``RUN/NAME.*`` mid-replacement (or otherwise broken) falls back
to the newest complete version. ``B2TRACK_FAULT=after:STEP[#N][=SIGNAL]`` (a test hook, ``fault_point``)
kills the process right after a step of a write.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from backbones.cli import UsageError, atomic_path, atomic_write_text
from backbones.mask import Mask, MaskError, parse_mask

FORMAT = "b2track-checkpoint/1"
KINDS = {"classifier": "a backbone with a classification head (python -m mixbin.train)",
         "tracker": "a SiamFC tracker (python -m tracker.train)",
         "deploy": "an inference-only SiamFC tracker, binary weights as bits (python -m tracker.export)"}
VERSIONS = ".checkpoints"
FAULT_ENV = "B2TRACK_FAULT"
_VERSION_NAME = re.compile(r"^\d{8}$")
_FAULT = re.compile(r"after:(?P<step>[\w:.-]+?)(?:#(?P<n>\d+))?(?:=(?P<signal>SIG[A-Z]+))?")
_FAULT_COUNTS: dict[str, int] = {}


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, of another kind, non-finite, or whose files disagree."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read: where it was read from, its kind, sidecar, tensors and mask."""

    path: Path
    kind: str
    sidecar: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    mask: Mask


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a ``.safetensors`` checkpoint."""
    return Path(path).with_suffix(".json")


def checkpoint_files(path: str | Path | None) -> list[Path]:
    """A checkpoint's two files (``NAME.safetensors`` and its ``NAME.json`` sidecar), or [] for None: what a
    run that reads it must never write over."""
    return [] if path is None else [Path(path), sidecar_path(path)]


def fault_point(step: str) -> None:
    """Test hook: ``B2TRACK_FAULT=after:STEP[#N][=SIGNAL]`` sends this process SIGNAL (default SIGKILL) right
    after the N-th (default first) time it passes ``STEP``; unset, it does nothing."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    match = _FAULT.fullmatch(wanted)
    if match is None or match["step"] != step:
        return
    _FAULT_COUNTS[step] = _FAULT_COUNTS.get(step, 0) + 1
    if _FAULT_COUNTS[step] == int(match["n"] or 1):
        os.kill(os.getpid(), getattr(signal, match["signal"] or "SIGKILL"))


def infer_kind(names: Iterable[str]) -> str:
    """The kind of a checkpoint from its tensor names: ``head.*`` tensors make a classifier."""
    return "classifier" if any(name.startswith("head.") for name in names) else "tracker"


def _checked_suffix(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"a checkpoint path must end in .safetensors, got {path}")
    return path


def _check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values")


def _environment(model: nn.Module) -> dict[str, str]:
    first = next(iter(model.parameters()), None)
    return {"device": str(first.device) if first is not None else "cpu", "torch": torch.__version__}


def save_checkpoint(path: str | Path, model: nn.Module, mask: Mask, meta: dict[str, Any],
                    kind: str | None = None) -> Path:
    """Write ``model``'s tensors, then its sidecar (``meta`` adds fields), each atomically; returns path."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_checkpoint(path, tensors, mask, meta, kind or infer_kind(tensors), _environment(model))


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], mask: Mask, meta: dict[str, Any],
                     kind: str, environment: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` as a checkpoint of ``kind`` (weights, then sidecar, each atomically); returns path."""
    path = _checked_suffix(path)
    _check_finite(tensors, f"refusing to write {path}")
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    head = {"format": FORMAT, "kind": kind, "id": uuid.uuid4().hex, "backbone": mask.backbone,
            "width": mask.width, "mask": mask.to_json()}
    tail = {"tensors": {k: list(v.shape) for k, v in tensors.items()},
            "environment": environment or {"device": "cpu", "torch": torch.__version__}}
    sidecar = head | {k: v for k, v in meta.items() if k not in head and k not in tail} | tail
    metadata = {"format": FORMAT, "kind": kind, "id": head["id"], "backbone": mask.backbone,
                "width": repr(float(mask.width)), "units": json.dumps(mask.units, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    fault_point("weights")
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")
    fault_point("sidecar")
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """A checkpoint's JSON sidecar, checked to be a b2track sidecar with a mask."""
    path = _checked_suffix(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} has no sidecar {side}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint sidecar {side} is unreadable: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "mask" not in meta:
        raise CheckpointError(f"{side} is not a b2track checkpoint sidecar (format {FORMAT!r} with a mask)")
    return meta


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a truncated or corrupt file is one clear error."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {err}") from None


def _check_pair(path: Path, sidecar: dict[str, Any], tensors: dict[str, torch.Tensor],
                metadata: dict[str, str], mask: Mask) -> None:
    """Weights and sidecar come from one write: same id, same tensor shapes, same mask."""
    if sidecar.get("id") != metadata.get("id"):
        raise CheckpointError(f"checkpoint {path} and its sidecar come from different writes "
                              "(an interrupted save?)")
    shapes = sidecar.get("tensors")
    actual = {k: list(v.shape) for k, v in tensors.items()}
    if isinstance(shapes, dict) and shapes != actual:
        diff = sorted(set(shapes) ^ set(actual) or {k for k in actual if shapes.get(k) != actual[k]})
        raise CheckpointError(f"checkpoint {path} and its sidecar disagree on tensor(s) "
                              f"{', '.join(diff[:5])}")
    units = metadata.get("units")
    if (units is not None and units != json.dumps(mask.units, sort_keys=True)) or \
            metadata.get("backbone", mask.backbone) != mask.backbone:
        raise CheckpointError(f"checkpoint {path}: the mask in its sidecar ({mask.backbone}) does not match "
                              f"its weights (written for {metadata.get('backbone', mask.backbone)})")


def _read_one(path: Path, kind: str | None) -> Checkpoint:
    sidecar = read_sidecar(path)
    tensors, metadata = read_tensors(path)
    found = sidecar.get("kind") or infer_kind(tensors)
    if found not in KINDS:
        raise CheckpointError(f"checkpoint {path} has unknown kind {found!r}; known: {', '.join(KINDS)}")
    if kind is not None and found != kind:
        raise CheckpointError(f"checkpoint {path} is a {found} checkpoint ({KINDS[found]}), "
                              f"not a {kind} checkpoint ({KINDS[kind]})")
    try:
        mask = parse_mask(sidecar["mask"], f"{sidecar_path(path)} mask")
    except MaskError as err:
        raise CheckpointError(str(err)) from None
    _check_pair(path, sidecar, tensors, metadata, mask)
    _check_finite(tensors, f"checkpoint {path}")
    return Checkpoint(path, found, sidecar, tensors, mask)


def read_checkpoint(path: str | Path, kind: str | None = None) -> Checkpoint:
    """Read and check a checkpoint (``kind``: the one expected, None for any).

    When ``path`` is broken but its folder holds committed versions of it (a training run), the newest
    complete version is read instead, with a warning on stderr.
    """
    path = _checked_suffix(path)
    try:
        return _read_one(path, kind)
    except CheckpointError as err:
        for version in complete_versions(path.parent, (path.name, sidecar_path(path).name)):
            try:
                found = _read_one(version / path.name, kind)
            except CheckpointError:
                continue
            print(f"warning: {err}; reading {found.path} (the last complete checkpoint)", file=sys.stderr)
            return found
        raise


def fit_error(found: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> str | None:
    """Why tensors ``found`` do not fit a state dict ``own`` (missing, unexpected, shape), or None."""
    missing, unknown = sorted(set(own) - set(found)), sorted(set(found) - set(own))
    bad = [k for k in own if k in found and own[k].shape != found[k].shape]
    if missing:
        return f"missing {missing[:3]}"
    if unknown:
        return f"unexpected {unknown[:3]}"
    return f"shape of {bad[:3]}" if bad else None


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's (any kind) ``backbone.`` tensors into ``model.backbone`` (all must fit) and its
    ``head.`` tensors into ``model.head`` when the model has one of the same shapes; returns the sidecar."""
    ckpt = read_checkpoint(path)
    backbone = model.backbone
    if ckpt.mask.backbone != backbone.name or not math.isclose(ckpt.mask.width, backbone.width, rel_tol=1e-9):
        raise CheckpointError(f"checkpoint {path} is for {ckpt.mask.backbone} width {ckpt.mask.width:g}, not "
                              f"{backbone.name} width {backbone.width:g}")
    found = {k[len("backbone."):]: v for k, v in ckpt.tensors.items() if k.startswith("backbone.")}
    why = fit_error(found, backbone.state_dict())
    if why:
        raise CheckpointError(f"checkpoint {path} does not fit {backbone.name} width {backbone.width:g}: "
                              f"{why}")
    backbone.load_state_dict(found)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        weights = {k[len("head."):]: v for k, v in ckpt.tensors.items() if k.startswith("head.")}
        if fit_error(weights, head.state_dict()) is None:
            head.load_state_dict(weights)
    return ckpt.sidecar


def load_sliced_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Initialise a narrower ``model`` from a wider checkpoint of the same backbone: every tensor takes
    the leading slice (first channels) of the checkpoint's tensor of the same name (structured pruning's
    start; exact for ungrouped layers, an initialisation for grouped ones)."""
    ckpt = read_checkpoint(path)
    backbone = model.backbone
    if ckpt.mask.backbone != backbone.name:
        raise CheckpointError(f"checkpoint {path} is for {ckpt.mask.backbone}, not {backbone.name}")
    state = model.state_dict()
    missing = sorted(k for k in state if k.startswith("backbone.") and k not in ckpt.tensors)
    if missing:
        raise CheckpointError(f"checkpoint {path} does not fit {backbone.name}: missing {missing[:3]}")
    sliced = {}
    for key, own in state.items():
        source = ckpt.tensors.get(key)
        if source is None or source.dim() != own.dim() or any(s < o for s, o in zip(source.shape, own.shape,
                                                                                        strict=True)):
            if key.startswith("backbone."):
                raise CheckpointError(f"checkpoint {path} cannot be sliced to {backbone.name} width "
                                      f"{backbone.width:g}: tensor {key}")
            continue  # a head of another size keeps its initialisation
        sliced[key] = source[tuple(slice(0, o) for o in own.shape)] if own.dim() else source
    model.load_state_dict(sliced, strict=False)
    return ckpt.sidecar


# ---------------------------------------------------------------- versioned training checkpoints

def complete_versions(run: str | Path, names: Sequence[str]) -> list[Path]:
    """Committed versions ``RUN/.checkpoints/<iteration>`` holding every file in ``names``, newest first."""
    store = Path(run) / VERSIONS
    if not store.is_dir():
        return []
    found = [p for p in store.iterdir()
             if _VERSION_NAME.match(p.name) and all((p / n).is_file() for n in names)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def remove_partial(run: str | Path) -> None:
    """Remove folders that an interrupted ``commit_version`` left in ``RUN/.checkpoints``."""
    store = Path(run) / VERSIONS
    if store.is_dir():
        for stale in store.glob(".*"):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(store: Path, stage: Path, final: Path) -> None:
    """Rename the filled ``stage`` folder to ``final`` (an existing ``final`` is moved aside first)."""
    for path in stage.iterdir():
        _fsync(path)
    if final.exists():
        os.replace(final, store / f".old-{final.name}-{uuid.uuid4().hex[:8]}")
    os.replace(stage, final)
    _fsync(store)


def commit_version(run: str | Path, iteration: int, write: Callable[[Path], None],
                   publish: Sequence[str], keep: int = 2) -> Path:
    """Write one checkpoint as a unit: ``write(folder)`` fills a fresh folder, one rename commits it as
    ``RUN/.checkpoints/<iteration>``, then the files ``publish`` are copied atomically into ``RUN`` and
    all but the newest ``keep`` versions are removed. A failed write leaves earlier checkpoints intact."""
    run = Path(run)
    store = run / VERSIONS
    final = store / f"{iteration:08d}"
    try:
        store.mkdir(parents=True, exist_ok=True)
        remove_partial(run)
        stage = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
        try:
            write(stage)
            _commit(store, stage, final)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        fault_point("commit")
        for name in publish:
            with atomic_path(run / name) as tmp:
                shutil.copyfile(final / name, tmp)
            fault_point(f"publish:{name}")
        for old in complete_versions(run, ())[keep:]:
            shutil.rmtree(old, ignore_errors=True)
        remove_partial(run)
        fault_point("prune")
    except (OSError, RuntimeError, SafetensorError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise CheckpointError(f"cannot write the checkpoint of iteration {iteration} in {run}: {reason} "
                              "(earlier checkpoints are kept)") from None
    return final
