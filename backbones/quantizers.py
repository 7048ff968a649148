"""Binary quantizers: activation sign with Bi-Real's ApproxSign gradient, scaled weight sign, RSign."""
from __future__ import annotations

import torch
from torch import nn


def _sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (sign(0) = +1 everywhere, as the packed path needs), -1 elsewhere."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _ApproxSign(torch.autograd.Function):
    """sign(x) forward (sign(0) = +1); Bi-Real Net's piecewise-polynomial gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return _sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # d/dx of ApproxSign: 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere.
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class _ClippedSTESign(torch.autograd.Function):
    """sign(w) forward (sign(0) = +1); straight-through gradient clipped to |w| <= 1."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w)
        return _sign(w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Binarize activations to +-1 with the ApproxSign surrogate gradient (Bi-Real Net)."""
    return _ApproxSign.apply(x)


def weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel alpha = mean |W| over the remaining dims, shaped to broadcast with W."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def sign_weight(weight: torch.Tensor) -> torch.Tensor:
    """sign(W) (sign(0) = +1) with the clipped straight-through gradient."""
    return _ClippedSTESign.apply(weight)


def binarize_weight(weight: torch.Tensor) -> torch.Tensor:
    """alpha * sign(W) with one alpha per output channel (XNOR-Net); clipped STE for sign."""
    return weight_scale(weight) * _ClippedSTESign.apply(weight)


class SignQuantizer(nn.Module):
    """Activation quantizer: sign(x) with the ApproxSign gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return approx_sign(x)


class RSign(nn.Module):
    """ReActNet's RSign: sign(x - b) with a learnable threshold b per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return approx_sign(x - self.threshold)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x - gamma) + zeta with learnable per-channel shifts."""

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.prelu = nn.PReLU(channels, init=0.25)
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x - self.shift_in) + self.shift_out


class WeightBinarizer(nn.Module):
    """Kernel quantizer: alpha * sign(W) per output channel."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binarize_weight(weight)
