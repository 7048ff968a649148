"""SiamFC's AlexNet (Bertinetto et al. 2016) with switchable units conv2..conv5 and a width multiplier."""
from __future__ import annotations

import torch
from torch import nn

from backbones.base import Backbone, scaled
from backbones.unit import SwitchableConv


class AlexNet(Backbone):
    """SiamFC's AlexNet layers at a width multiplier, total stride 8, 4 units.

    conv1 96x11x11/2 (fixed), pool, conv2 256x5x5 g2, pool, conv3 384x3x3, conv4 384x3x3 g2, conv5 256x3x3 g2.
    ReLUs live inside the units (ReLU on the FP path, sign on the binary path), so each unit sees the
    pre-activation; max-pooling commutes with ReLU, so at width 1.0 the all-FP network has SiamFC's
    layers and shapes. It differs in its batch norms: PyTorch's defaults (eps 1e-5, momentum 0.1), where
    siamfc-pytorch uses eps 1e-6 and momentum 0.05, so weights imported from siamfc-pytorch
    (``tracker.init``) give slightly different activations. The eps is kept: the shipped models and
    masks were made with it.
    """

    name = "alexnet"

    def __init__(self, width: float = 1.0):
        super().__init__(width)
        c1, c2, c3, c4, c5 = (scaled(c, width) for c in (96, 256, 384, 384, 256))
        self.conv1 = nn.Conv2d(3, c1, 11, stride=2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.pool1 = nn.MaxPool2d(3, stride=2)
        self.conv2 = SwitchableConv(c1, c2, 5, groups=2)
        self.pool2 = nn.MaxPool2d(3, stride=2)
        self.conv3 = SwitchableConv(c2, c3, 3)
        self.conv4 = SwitchableConv(c3, c4, 3, groups=2)
        self.conv5 = SwitchableConv(c4, c5, 3, groups=2, norm=False)
        self.out_channels = c5

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.bn1(self.conv1(x)))
        x = self.pool2(self.conv2(x))
        return self.conv5(self.conv4(self.conv3(x)))
