"""Weights files: ``NAME.safetensors`` + ``NAME.json`` sidecar (DESIGN.md section 5), written atomically.

Tensors are stored under ``backbone.`` (exactly ``model.backbone.state_dict()`` names) and, for a
classifier, ``head.``; the tracker's ``SiamFC`` also has ``backbone``, so either kind of model loads the
backbone part of the other's checkpoint.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from backbones.cli import UsageError, atomic_path, atomic_write_text
from backbones.mask import Mask
from tracker.checkpoint import FORMAT, read_tensors, sidecar_path


def _check_suffix(path: Path) -> None:
    if path.suffix != ".safetensors":
        raise UsageError(f"a checkpoint path must end in .safetensors, got {path}")


def save_checkpoint(model: nn.Module, path: str | Path, mask: Mask, meta: dict[str, Any]) -> Path:
    """Write the model's tensors and a sidecar (backbone, width, mask, tensor shapes, ``meta``) atomically."""
    path = Path(path)
    _check_suffix(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sidecar = {"format": FORMAT, "backbone": mask.backbone, "width": mask.width, "mask": mask.to_json(),
               **meta, "tensors": {k: list(v.shape) for k, v in tensors.items()}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load tensors and sidecar, checking that they agree (names, shapes); one-line UsageError otherwise."""
    path = Path(path)
    _check_suffix(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    if not side.is_file():
        raise UsageError(f"checkpoint {path} has no sidecar {side}")
    tensors, _metadata = read_tensors(path)
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{side}: malformed JSON ({err})") from None
    if not isinstance(sidecar, dict):
        raise UsageError(f"{side}: a checkpoint sidecar must be a JSON object")
    shapes = sidecar.get("tensors")
    if isinstance(shapes, dict):
        actual = {k: list(v.shape) for k, v in tensors.items()}
        if shapes != actual:
            diff = sorted(set(shapes) ^ set(actual) or {k for k in actual if shapes.get(k) != actual[k]})
            raise UsageError(f"checkpoint {path} and its sidecar disagree on tensor(s) {', '.join(diff[:5])}")
    return tensors, sidecar


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's ``backbone.`` tensors into ``model.backbone`` (all must fit) and its ``head.``
    tensors into ``model.head`` when the model has one of the same shape; returns the sidecar."""
    tensors, sidecar = read_checkpoint(path)
    backbone = model.backbone
    name, width = sidecar.get("backbone"), sidecar.get("width")
    if name is not None and (name != backbone.name or not isinstance(width, (int, float))
                             or not math.isclose(width, backbone.width, rel_tol=1e-9)):
        raise UsageError(f"checkpoint {path} is for {name} width {width}, not {backbone.name} "
                         f"width {backbone.width:g}")
    own = backbone.state_dict()
    found = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    missing, unknown = sorted(set(own) - set(found)), sorted(set(found) - set(own))
    bad = [k for k in own if k in found and own[k].shape != found[k].shape]
    if missing or unknown or bad:
        what = (f"missing {missing[:3]}" if missing else f"unexpected {unknown[:3]}" if unknown
                else f"shape of {bad[:3]}")
        raise UsageError(f"checkpoint {path} does not fit {backbone.name} width {backbone.width:g}: {what}")
    backbone.load_state_dict(found)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        weights = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
        own_head = head.state_dict()
        if weights.keys() == own_head.keys() and all(own_head[k].shape == v.shape for k, v in weights.items()):
            head.load_state_dict(weights)
    return sidecar


def load_sliced_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Initialise a narrower ``model`` from a wider checkpoint of the same backbone: every tensor takes
    the leading slice (first channels) of the checkpoint's tensor of the same name (structured pruning's
    start; exact for ungrouped layers, an initialisation for grouped ones)."""
    tensors, sidecar = read_checkpoint(path)
    backbone = model.backbone
    if sidecar.get("backbone") not in (None, backbone.name):
        raise UsageError(f"checkpoint {path} is for {sidecar.get('backbone')}, not {backbone.name}")
    state = model.state_dict()
    missing = sorted(k for k in state if k.startswith("backbone.") and k not in tensors)
    if missing:
        raise UsageError(f"checkpoint {path} does not fit {backbone.name}: missing {missing[:3]}")
    sliced = {}
    for key, own in state.items():
        source = tensors.get(key)
        if source is None or source.dim() != own.dim() or any(s < o for s, o in zip(source.shape, own.shape)):
            if key.startswith("backbone."):
                raise UsageError(f"checkpoint {path} cannot be sliced to {backbone.name} width "
                                 f"{backbone.width:g}: tensor {key}")
            continue  # a head of another size keeps its initialisation
        sliced[key] = source[tuple(slice(0, o) for o in own.shape)] if own.dim() else source
    model.load_state_dict(sliced, strict=False)
    return sidecar
