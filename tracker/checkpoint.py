"""Checkpoints: NAME.safetensors (weights) + NAME.json (sidecar: backbone, width, mask, training, metrics).

Loading rebuilds the network from the sidecar and checks that the tensors agree with it (names, shapes,
and the mask recorded in the safetensors metadata), failing with one line otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from backbones.cli import UsageError, atomic_path, atomic_write_text
from backbones.mask import MaskError, parse_mask
from tracker.model import SiamFC, build_siamfc

FORMAT = "b2track-checkpoint/1"


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, or whose sidecar and tensors disagree."""


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a ``.safetensors`` checkpoint."""
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | Path, model: SiamFC, meta: dict[str, Any]) -> None:
    """Write weights then sidecar, each atomically; ``meta`` must hold the mask as JSON under 'mask'."""
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    mask = meta["mask"]
    metadata = {"format": FORMAT, "backbone": mask["backbone"], "width": repr(float(mask["width"])),
                "units": json.dumps(mask["units"], sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    atomic_write_text(sidecar_path(path), json.dumps({"format": FORMAT, **meta}, indent=2) + "\n")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read and minimally validate a checkpoint's JSON sidecar."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint must be a .safetensors file: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint sidecar not found: {side}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint sidecar {side} is unreadable: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "mask" not in meta:
        raise CheckpointError(f"{side} is not a b2track checkpoint sidecar (format {FORMAT!r} with a mask)")
    return meta


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a truncated or corrupt file is one clear error."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {err}") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[SiamFC, dict[str, Any]]:
    """Rebuild the SiamFC network a checkpoint describes and load its weights (eval mode)."""
    meta = read_sidecar(path)
    try:
        mask = parse_mask(meta["mask"], f"{sidecar_path(path)} mask")
    except MaskError as err:
        raise CheckpointError(str(err)) from None
    tensors, metadata = read_tensors(path)
    if metadata.get("units") != json.dumps(mask.units, sort_keys=True) or metadata.get("backbone") != mask.backbone:
        raise CheckpointError(f"checkpoint {path}: the mask in its sidecar does not match its weights")
    model = build_siamfc(mask)
    expected = model.state_dict()
    if set(tensors) != set(expected):
        diff = sorted(set(tensors) ^ set(expected))
        raise CheckpointError(f"checkpoint {path}: tensor names do not match {mask.backbone} width "
                              f"{mask.width:g} (e.g. {diff[0]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"checkpoint {path}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"expected {tuple(expected[name].shape)}")
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta
