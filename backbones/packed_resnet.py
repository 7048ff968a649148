"""The fused packed runner of the ``resnet`` backbone: NHWC throughout, every batch norm folded.

A binary block is one kernel call: its packed input (from the previous block's epilogue when that was
binary too), XNOR-popcount, ``scale * dot + shift`` plus the shortcut, and the sign-packing of the
result for the next block. FP blocks and the fixed layers (stem, projection shortcuts) run torch's
float convolutions in channels_last with their batch norms folded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backbones.packed import PackedConv, folded_conv
from backbones.resnet import ResidualUnit, ResNet


class _Block:
    """One ``ResidualUnit`` at inference."""

    def __init__(self, block: ResidualUnit):
        unit = block.conv
        self.binary = unit.state == "binary"
        self.stride = block.stride
        self.shortcut = folded_conv(block.shortcut[0], block.shortcut[1]) if block.project else None
        self.packed = PackedConv(unit) if self.binary else None
        self.fp = None if self.binary else folded_conv(unit.conv, unit.bn_fp)

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return x[:, :, 1:-1, 1:-1]
        return self.shortcut(F.avg_pool2d(x, 3, stride=self.stride))

    def __call__(self, x: torch.Tensor, xp: torch.Tensor | None, pack_next: bool, path: str, threads: int):
        skip = self.skip(x)
        if not self.binary:
            return torch.add(self.fp(F.relu(x)), skip), None
        if xp is None:
            xp = self.packed.pack_input(x, path, threads)
        return self.packed.run_packed(xp, tuple(x.shape[2:]), path, threads, skip, 1 if pack_next else 0)


class PackedResNet:
    """``embed`` of a ``ResNet`` with binary blocks packed and fused (a callable, inference only)."""

    def __init__(self, backbone: ResNet, path: str):
        self.path = path
        self.stem = folded_conv(backbone.stem[0], backbone.stem[1])
        self.blocks = [_Block(b) for layer in (backbone.layer1, backbone.layer2) for b in layer]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        x = self.stem(x.float().contiguous(memory_format=torch.channels_last))
        xp = None
        for i, block in enumerate(self.blocks):
            pack_next = i + 1 < len(self.blocks) and self.blocks[i + 1].binary
            x, xp = block(x, xp, pack_next, self.path, threads)
        return x
