"""A Bi-Real-style residual backbone for Siamese tracking: every binarizable 3x3 conv has a real shortcut.

Convolutions are unpadded and each shortcut is cropped to match (SiamDW's crop-inside-residual idea), so
no feature depends on zero padding and the response stays translation-equivariant, as SiamFC needs.
Layout at width 1.0 (255x255 search input -> 22x22x128, 127x127 exemplar -> 6x6x128):
stem 3x3/2 conv (fixed) -> layer1: 3x3/2 down unit + 3 blocks (64 ch, stride 4)
-> layer2: 3x3/2 down unit + 3 blocks (128 ch, stride 8). 8 units, 0.80 G MACs, min budget 0.05.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones.base import Backbone, scaled
from backbones.unit import SwitchableConv


class ResidualUnit(nn.Module):
    """out = unit(x) + shortcut(x): a valid 3x3 unit with a real-valued shortcut cropped to fit.

    With a stride or a channel change the shortcut is a fixed FP path: 3x3 average pool (stride s,
    unpadded, so its centres align with the conv's) and a 1x1 conv + BN (Bi-Real's downsampling).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = SwitchableConv(in_channels, out_channels, 3, stride=stride)
        self.stride = stride
        self.project = stride != 1 or in_channels != out_channels
        if self.project:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.project:
            skip = self.shortcut(F.avg_pool2d(x, 3, stride=self.stride))
        else:
            skip = x[:, :, 1:-1, 1:-1]
        return out + skip


class ResNet(Backbone):
    """Residual B2NN backbone, total stride 8, 8 units (the default backbone)."""

    name = "resnet"
    blocks = (3, 3)  # stride-1 units after each layer's down unit

    def __init__(self, width: float = 1.0):
        super().__init__(width)
        c0, c1, c2 = (scaled(c, width) for c in (32, 64, 128))
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, stride=2, bias=False), nn.BatchNorm2d(c0))
        self.layer1 = self._layer(c0, c1, self.blocks[0])
        self.layer2 = self._layer(c1, c2, self.blocks[1])
        self.out_channels = c2

    @staticmethod
    def _layer(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
        layers = [ResidualUnit(in_channels, out_channels, stride=2)]
        layers += [ResidualUnit(out_channels, out_channels) for _ in range(blocks)]
        return nn.Sequential(*layers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(self.stem(x)))
