"""The switchable unit: one binarizable convolution that runs FP, binary, or a gate-weighted mix of both."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones.quantizers import RSign, approx_sign, sign_weight, weight_scale

STATES = ("fp", "binary")


class SwitchableConv(nn.Module):
    """A unit: input activation + convolution + batch norm, with one set of latent weights.

    The unit receives a pre-activation (it can be negative). The FP path applies ReLU then the float
    convolution; the binary path applies sign (or RSign) then a convolution with alpha * sign(W). Each
    path has its own batch norm, since FP and binary outputs have different statistics. With ``gate``
    set (a scalar tensor z in [0, 1]) the unit returns z * FP + (1 - z) * binary, as MixBin's search needs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, norm: bool = True, rsign: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, groups=groups,
                              bias=not norm)
        self.bn_fp: nn.Module = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.bn_bin: nn.Module = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.rsign = RSign(in_channels) if rsign else None
        self.state = "fp"
        self.gate: torch.Tensor | None = None

    def set_state(self, state: str) -> None:
        """Select the FP or the binary path (clears any gate)."""
        if state not in STATES:
            raise ValueError(f"unit state must be one of {STATES}, got {state!r}")
        self.state = state
        self.gate = None

    def forward_fp(self, x: torch.Tensor) -> torch.Tensor:
        """Float path: ReLU, float convolution, FP batch norm."""
        return self.bn_fp(self.conv(F.relu(x)))

    def forward_binary(self, x: torch.Tensor) -> torch.Tensor:
        """Binary path: sign(x), convolution with alpha * sign(W), binary batch norm."""
        xb = self.rsign(x) if self.rsign is not None else approx_sign(x)
        # alpha * conv(sign x, sign W) == conv(sign x, alpha * sign W), but the integer sums are exact
        # in float32, so the packed XNOR-popcount path (backbones.packed) reproduces it bit for bit.
        w = self.conv.weight
        y = F.conv2d(xb, sign_weight(w), None, self.conv.stride, self.conv.padding, self.conv.dilation,
                     self.conv.groups) * weight_scale(w).view(1, -1, 1, 1)
        if self.conv.bias is not None:
            y = y + self.conv.bias.view(1, -1, 1, 1)
        return self.bn_bin(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            z = self.gate
            return z * self.forward_fp(x) + (1 - z) * self.forward_binary(x)
        return self.forward_fp(x) if self.state == "fp" else self.forward_binary(x)

    def extra_repr(self) -> str:
        return f"state={self.state}"
