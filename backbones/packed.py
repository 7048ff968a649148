"""Packed inference for binary units (docs/design.md section 7): weights packed once, alpha and BN folded.

``PackedConv`` is one binary unit (sign -> binary conv with alpha -> its BN) as sign-pack, bit-domain
im2col, XNOR-popcount and a float epilogue ``scale * dot + shift``; it is exact for any K, stride,
groups and zero padding. ``backbones.packed_embed.packed_embedder(backbone)`` returns an inference-only
``embed``: for ``resnet`` a fused runner (BNs folded into convs, the residual add and the next unit's
sign-packing fused into the epilogue, NHWC throughout); for other backbones a copy with binary units
swapped.
Training and MixBin keep the float modules; nothing here changes the model it reads.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from backbones import kernels
from backbones.kernels import Epilogue, PackedWeights
from backbones.quantizers import weight_scale
from backbones.unit import SwitchableConv


def fold_bn(bn: nn.Module, bias: torch.Tensor | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(y + bias) = scale * y + shift per channel (an Identity bn: 1, bias)."""
    bias = torch.zeros(channels) if bias is None else bias.detach().float()
    if isinstance(bn, nn.BatchNorm2d):
        inv = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
        return inv, bn.bias.detach().float() + (bias - bn.running_mean.float()) * inv
    return torch.ones(channels), bias


def bn_terms(bn: nn.Module, bias: torch.Tensor | None, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mult, shift) with bn(y) = fma(y, mult, shift), rounded as torch's CPU batch norm rounds them.

    torch (eval, float32) computes a = rsqrt(var + eps) * w, b = bias - mean * a (fused) and
    y * a + b (fused); the same roundings keep the packed path bit-equal to the float one.
    """
    if isinstance(bn, nn.BatchNorm2d):
        if bias is not None:
            raise ValueError("a unit with both a conv bias and a batch norm has no exact packed form")
        eps = torch.tensor(bn.eps, dtype=torch.float32)
        mult = torch.rsqrt(bn.running_var.detach().float() + eps) * bn.weight.detach().float()
        shift = (bn.bias.detach().double() - bn.running_mean.detach().double() * mult.double()).float()
        return mult.contiguous(), shift.contiguous()
    shift = torch.zeros(channels) if bias is None else bias.detach().float()
    return torch.ones(channels), shift.contiguous()


def folded_conv(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    """A float conv with ``bn`` folded into its weight and bias (inference only)."""
    scale, shift = fold_bn(bn, conv.bias, conv.out_channels)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True)
    with torch.no_grad():
        out.weight.copy_(conv.weight.detach().float() * scale.view(-1, 1, 1, 1))
        out.bias.copy_(shift)
    return out.eval().to(memory_format=torch.channels_last)


class PackedConv:
    """A binary unit's convolution packed for XNOR-popcount inference, alpha and the binary BN folded."""

    def __init__(self, unit: SwitchableConv):
        conv = unit.conv
        if conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("packed units support dilation 1 and numeric zero padding only")
        self.weights: PackedWeights = kernels.pack_weights(conv.weight, conv.groups)
        self.stride = tuple(conv.stride)
        self.padding = tuple(conv.padding)
        self.groups = conv.groups
        self.in_channels = conv.in_channels
        self.scale = weight_scale(conv.weight.detach().float()).flatten().contiguous()  # alpha
        self.mult, self.shift = bn_terms(unit.bn_bin, conv.bias, conv.out_channels)
        # per-tap sums of sign(W) over input channels, for the exact padding correction
        signs = torch.where(conv.weight.detach() >= 0, 1.0, -1.0).double()
        self.tap_sums = signs.sum(dim=1, keepdim=True)
        self._corr: dict[tuple[int, int], torch.Tensor | None] = {}

    def correction(self, h: int, w: int) -> torch.Tensor | None:
        """[OH, OW, Cout] int32: what padded taps add when packed as +1 (a real zero adds nothing)."""
        if (h, w) not in self._corr:
            ph, pw = self.padding
            if ph == 0 and pw == 0:
                self._corr[(h, w)] = None
            else:
                pad = F.pad(torch.zeros(1, 1, h, w, dtype=torch.float64), (pw, pw, ph, ph), value=1.0)
                corr = F.conv2d(pad, self.tap_sums, stride=self.stride)[0].permute(1, 2, 0)
                self._corr[(h, w)] = corr.round().to(torch.int32).contiguous()
        return self._corr[(h, w)]

    def pack_input(self, x: torch.Tensor, path: str, threads: int, reuse: dict | None = None) -> torch.Tensor:
        """Sign-pack an NCHW float input (any layout) and zero-pad it in the bit domain."""
        x = x.float().contiguous(memory_format=torch.channels_last)
        return self.pad(kernels.pack(x, self.groups, path, threads, reuse))

    def pad(self, xp: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        return F.pad(xp, (0, 0, 0, 0, pw, pw, ph, ph)) if ph or pw else xp

    def dots(self, x: torch.Tensor, path: str, threads: int | None = None) -> torch.Tensor:
        """Integer dot products sum(sign(x) * sign(W)) [N, OH, OW, Cout], padding counted as zero."""
        threads = threads or torch.get_num_threads()
        xp = self.pack_input(x, path, threads)
        return kernels.conv(xp, self.weights, self.stride, path, threads, self.correction(*x.shape[2:]))

    def run_packed(self, xp: torch.Tensor, in_hw: tuple[int, int], path: str, threads: int,
                   residual: torch.Tensor | None = None, pack_groups: int = 0, reuse: dict | None = None):
        """Epilogue output (NCHW, channels_last memory) and its packed signs from a packed padded input."""
        epilogue = Epilogue(self.scale, self.mult, self.shift, residual, pack_groups, reuse)
        return kernels.conv(xp, self.weights, self.stride, path, threads, self.correction(*in_hw), epilogue)

    def __call__(self, x: torch.Tensor, path: str, threads: int | None = None) -> torch.Tensor:
        threads = threads or torch.get_num_threads()
        out, _ = self.run_packed(self.pack_input(x, path, threads), tuple(x.shape[2:]), path, threads)
        return out


class PackedUnit(nn.Module):
    """Drop-in inference replacement of a binary ``SwitchableConv`` (generic, unfused)."""

    def __init__(self, unit: SwitchableConv, path: str):
        super().__init__()
        self.packed = PackedConv(unit)
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.packed(x, self.path)


def swap_units(backbone: nn.Module, path: str) -> nn.Module:
    """A copy of ``backbone`` whose binary units are packed inference modules (FP units unchanged)."""
    model = copy.deepcopy(backbone).eval()
    for name, unit in list(backbone.units().items()):
        if unit.state != "binary":
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, PackedUnit(unit, path))
    return model.to(memory_format=torch.channels_last)
