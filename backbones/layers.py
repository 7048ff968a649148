"""Larq-style quantized convolution: an ordinary Conv2d plus an input and a kernel quantizer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones.quantizers import SignQuantizer, WeightBinarizer


class QuantConv2d(nn.Conv2d):
    """Conv2d whose input and kernel pass through quantizers first (None = keep float)."""

    def __init__(self, *args, input_quantizer: nn.Module | None = None,
                 kernel_quantizer: nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_quantizer = input_quantizer
        self.kernel_quantizer = kernel_quantizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        weight = self.weight if self.kernel_quantizer is None else self.kernel_quantizer(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class BinaryConv2d(QuantConv2d):
    """1-bit convolution: sign(x) convolved with alpha * sign(W); zero padding stays a real zero."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, input_quantizer=SignQuantizer(), kernel_quantizer=WeightBinarizer(), **kwargs)
