"""A SiamFC tracker from a checkpoint of kind ``tracker`` (the one format: ``backbones.checkpoint``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backbones.checkpoint import CheckpointError, fit_error, read_checkpoint
from tracker.model import SiamFC, build_siamfc


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[SiamFC, dict[str, Any]]:
    """Rebuild the SiamFC network a tracker checkpoint describes and load its weights (eval mode)."""
    ckpt = read_checkpoint(path, kind="tracker")
    model = build_siamfc(ckpt.mask)
    why = fit_error(ckpt.tensors, model.state_dict())
    if why:
        raise CheckpointError(f"checkpoint {path}: tensors do not match {ckpt.mask.backbone} width "
                              f"{ckpt.mask.width:g} ({why})")
    model.load_state_dict(ckpt.tensors)
    return model.to(device).eval(), ckpt.sidecar
