"""Initialising a tracker's backbone: Kaiming from scratch, or weights from another run (--init-from).

Accepted sources: a b2track checkpoint (tracker or classification, any mask: units share latent weights),
or a siamfc-pytorch ``.pth`` state dict for the FP ``alexnet``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from backbones.checkpoint import CheckpointError, read_checkpoint
from backbones.unit import SwitchableConv
from tracker.model import SiamFC

# siamfc-pytorch AlexNetV1 module names -> ours (its conv5 has no batch norm).
_SIAMFC_PYTORCH = {"conv1.0": "conv1", "conv1.1": "bn1", "conv2.0": "conv2.conv", "conv2.1": "conv2.bn_fp",
                   "conv3.0": "conv3.conv", "conv3.1": "conv3.bn_fp", "conv4.0": "conv4.conv",
                   "conv4.1": "conv4.bn_fp", "conv5.0": "conv5.conv"}


def kaiming_init(model: nn.Module) -> None:
    """siamfc-pytorch's initialisation: Kaiming-normal (fan_out) convolutions, unit batch norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _siamfc_pytorch_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise CheckpointError(f"cannot read {path} as a siamfc-pytorch state dict: {err}") from None
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] != "backbone" or len(parts) < 4:
            continue
        module = _SIAMFC_PYTORCH.get(".".join(parts[1:3]))
        if module is not None:
            out[f"backbone.{module}.{parts[3]}"] = tensor
    if not out:
        raise CheckpointError(f"{path} holds no siamfc-pytorch AlexNet backbone tensors "
                              "(backbone.conv1.0.weight ...)")
    if not all(bool(torch.isfinite(t).all()) for t in out.values() if t.is_floating_point()):
        raise CheckpointError(f"{path} holds NaN or infinite weights")
    return out


def load_init(model: SiamFC, path: str | Path) -> int:
    """Copy matching ``backbone.*`` tensors from ``path`` into ``model``; returns how many were copied."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--init-from checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        source = {k: v for k, v in read_checkpoint(path).tensors.items() if k.startswith("backbone.")}
    else:
        source = _siamfc_pytorch_tensors(path)
    target = model.state_dict()
    for name, tensor in source.items():
        if name not in target:
            raise CheckpointError(f"--init-from {path}: tensor {name} does not exist in "
                                  f"{model.backbone.name}")
        if tensor.shape != target[name].shape:
            raise CheckpointError(f"--init-from {path}: {name} has shape {tuple(tensor.shape)}, expected "
                                  f"{tuple(target[name].shape)} (another width?)")
    model.load_state_dict(source, strict=False)
    _seed_binary_norms(model, source)
    return len(source)


@torch.no_grad()
def _seed_binary_norms(model: SiamFC, source: dict[str, torch.Tensor]) -> None:
    """Where the source never trained a unit's binary path, start its BN affine from the FP path's."""
    for name, unit in model.backbone.units().items():
        key = f"backbone.{name}.bn_bin.num_batches_tracked"
        trained = key in source and int(source[key]) > 0
        if isinstance(unit, SwitchableConv) and isinstance(unit.bn_bin, nn.BatchNorm2d) and not trained:
            unit.bn_bin.weight.copy_(unit.bn_fp.weight)
            unit.bn_bin.bias.copy_(unit.bn_fp.bias)
