"""Binary quantizers: activation sign with Bi-Real's ApproxSign gradient, and the scaled weight sign."""
from __future__ import annotations

import torch
from torch import nn


def _sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (sign(0) = +1 everywhere, as the packed path needs), -1 elsewhere."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _approx_sign_slope(x: torch.Tensor) -> torch.Tensor:
    """d/dx of Bi-Real Net's ApproxSign: 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere."""
    return torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


def _clipped_ste_slope(w: torch.Tensor) -> torch.Tensor:
    """The straight-through estimator clipped to |w| <= 1."""
    return (w.abs() <= 1).to(w.dtype)


class _Sign(torch.autograd.Function):
    """sign(x) forward (sign(0) = +1); backward passes the gradient times a surrogate ``slope(x)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return _sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.slope(x), None


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Binarize activations to +-1 with the ApproxSign surrogate gradient (Bi-Real Net)."""
    return _Sign.apply(x, _approx_sign_slope)


def weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel alpha = mean |W| over the remaining dims, shaped to broadcast with W."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def sign_weight(weight: torch.Tensor) -> torch.Tensor:
    """sign(W) (sign(0) = +1) with the clipped straight-through gradient."""
    return _Sign.apply(weight, _clipped_ste_slope)


def binarize_weight(weight: torch.Tensor) -> torch.Tensor:
    """alpha * sign(W) with one alpha per output channel (XNOR-Net); clipped STE for sign."""
    return weight_scale(weight) * sign_weight(weight)


class SignQuantizer(nn.Module):
    """Activation quantizer: sign(x) with the ApproxSign gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return approx_sign(x)


class WeightBinarizer(nn.Module):
    """Kernel quantizer: alpha * sign(W) per output channel."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return binarize_weight(weight)
