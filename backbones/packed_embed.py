"""The one entry to packed inference: an inference-only ``embed`` for any backbone.

``resnet`` gets the fused runner (``backbones.packed_resnet``); other backbones get a copy whose binary
units are swapped for ``backbones.packed.PackedConv`` modules.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from backbones import kernels
from backbones.packed import swap_units
from backbones.packed_resnet import PackedResNet
from backbones.resnet import ResNet


def packed_embedder(backbone: nn.Module, path: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """An inference-only ``embed`` running binary units packed on kernel ``path`` (default: resolved)."""
    path = kernels.resolve_path(path)
    kernels.keep_heap()
    if isinstance(backbone, ResNet):
        return PackedResNet(backbone, path)
    return swap_units(backbone, path).embed
