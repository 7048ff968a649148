"""The fused packed runner of the ``resnet`` backbone: NHWC (channels_last) throughout.

A binary block is one kernel call: its packed input (from the previous block's epilogue when that was
binary too), XNOR-popcount, alpha and the batch norm, the shortcut add, and the sign-packing of the
result for the next block. FP blocks and the fixed layers (stem, projection shortcuts) run the model's
own float modules in channels_last, so every value equals the float path's bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backbones import kernels
from backbones.packed import PackedConv, bn_terms
from backbones.resnet import ResidualUnit, ResNet


class _Block:
    """One ``ResidualUnit`` at inference."""

    def __init__(self, block: ResidualUnit):
        unit = block.conv
        self.binary = unit.state == "binary"
        self.stride = block.stride
        self.shortcut = block.shortcut if block.project else None
        self.packed = PackedConv(unit) if self.binary else None
        self.fp = None if self.binary else unit.forward_fp
        self.reuse: dict = {}  # this block's intermediate outputs, kept across calls

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return x[:, :, 1:-1, 1:-1]
        return self.shortcut(F.avg_pool2d(x, 3, stride=self.stride))

    def __call__(self, x: torch.Tensor, xp: torch.Tensor | None, pack_next: bool, path: str, threads: int,
                 last: bool = False):
        """(output, its packed signs or None); a non-last output lives in a buffer reused next call."""
        skip = self.skip(x)
        if not self.binary:
            return self.fp(x) + skip, None
        reuse = None if last else self.reuse
        if xp is None:
            xp = self.packed.pack_input(x, path, threads, self.reuse)
        hw = tuple(x.shape[2:])
        return self.packed.run_packed(xp, hw, path, threads, skip, 1 if pack_next else 0, reuse)


class PackedResNet:
    """``embed`` of a ``ResNet`` with binary blocks packed and fused (a callable, inference only).

    When the first block is binary, the stem's batch norm and the sign-packing of its output are one
    pass (``kernels.bn_pack``, the batch norm rounded as torch rounds it), so that block starts packed.
    """

    def __init__(self, backbone: ResNet, path: str):
        self.path = path
        self.stem = backbone.stem
        self.blocks = [_Block(b) for layer in (backbone.layer1, backbone.layer2) for b in layer]
        conv, bn = backbone.stem[0], backbone.stem[1]
        self.stem_packs = (self.blocks[0].binary and len(backbone.stem) == 2
                           and isinstance(bn, nn.BatchNorm2d) and conv.bias is None)
        if self.stem_packs:
            self.stem_conv = conv
            self.stem_terms = bn_terms(bn, conv.bias, conv.out_channels)
        self.reuse: dict = {}

    def stem_out(self, x: torch.Tensor, threads: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stem's output, and its packed signs (padded for the first block) when that block is binary."""
        x = x.float().contiguous(memory_format=torch.channels_last)
        if not self.stem_packs:
            return self.stem(x), None
        y = self.stem_conv(x).contiguous(memory_format=torch.channels_last)
        first = self.blocks[0].packed
        out, xp = kernels.bn_pack(y, *self.stem_terms, first.groups, self.path, threads, self.reuse)
        return out, first.pad(xp)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        x, xp = self.stem_out(x, threads)
        for i, block in enumerate(self.blocks):
            pack_next = i + 1 < len(self.blocks) and self.blocks[i + 1].binary
            x, xp = block(x, xp, pack_next, self.path, threads, last=i + 1 == len(self.blocks))
        return x
