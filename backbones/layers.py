"""Larq-style quantized convolution: an ordinary Conv2d plus an input and a kernel quantizer."""
from __future__ import annotations

import torch
from torch import nn

from backbones.quantizers import SignQuantizer, WeightBinarizer, sign_weight, weight_scale


class QuantConv2d(nn.Conv2d):
    """Conv2d whose input and kernel pass through quantizers first (None = keep float).

    The weights stay latent floats (the state dict is an ordinary Conv2d's); ``forward_float`` runs the
    same convolution with both quantizers bypassed, which is how a switchable unit's FP path shares them.
    """

    def __init__(self, *args, input_quantizer: nn.Module | None = None,
                 kernel_quantizer: nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_quantizer = input_quantizer
        self.kernel_quantizer = kernel_quantizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        weight = self.weight if self.kernel_quantizer is None else self.kernel_quantizer(self.weight)
        return self._conv_forward(x, weight, self.bias)

    def forward_float(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution with the latent float weights and an unquantized input."""
        return self._conv_forward(x, self.weight, self.bias)


class BinaryConv2d(QuantConv2d):
    """1-bit convolution: sign(x) convolved with alpha * sign(W); zero padding stays a real zero."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, input_quantizer=SignQuantizer(), kernel_quantizer=WeightBinarizer(), **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """alpha * conv(sign x, sign W): equal to conv(sign x, alpha * sign W), but its integer sums are exact
        in float32, so the packed XNOR-popcount path (``backbones.packed``) reproduces it bit for bit."""
        sums = self._conv_forward(self.input_quantizer(x), sign_weight(self.weight), None)
        y = sums * weight_scale(self.weight).view(1, -1, 1, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
