"""The SiamFC network: a registry backbone (with its mask) embeds both images; a cross-correlation compares
them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones.base import Backbone
from backbones.mask import Mask, build_masked_backbone

OUT_SCALE = 0.001


def cross_correlate(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Correlate each exemplar embedding (N, C, h, w) with its search embeddings (N*k, C, H, W)."""
    n = kernel.shape[0]
    nx, c, h, w = search.shape
    out = F.conv2d(search.reshape(-1, n * c, h, w), kernel, groups=n)
    return out.reshape(nx, 1, out.shape[-2], out.shape[-1])


class SiamFC(nn.Module):
    """Siamese fully-convolutional tracker network: response = out_scale * (phi(z) * phi(x))."""

    def __init__(self, backbone: Backbone, out_scale: float = OUT_SCALE):
        super().__init__()
        self.backbone = backbone
        self.out_scale = out_scale

    def head(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Response maps from embeddings."""
        return cross_correlate(kernel, search) * self.out_scale

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(z), self.backbone.embed(x))


def build_siamfc(mask: str | Mask, backbone: str | None = None, width: float | None = None) -> SiamFC:
    """SiamFC on the backbone a mask names ('fp' / 'binary' need ``backbone``)."""
    return SiamFC(build_masked_backbone(mask, backbone, width))
