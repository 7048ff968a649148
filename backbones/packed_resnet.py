"""The fused packed runner of the ``resnet`` backbone: NHWC (channels_last) throughout.

A binary block is one kernel call: its packed input (from the previous block's epilogue when that was
binary too), XNOR-popcount, alpha and the batch norm, the shortcut add, and the sign-packing of the
result for the next block. FP blocks and the fixed layers (stem, projection shortcuts) run the model's
own float modules in channels_last, so every value equals the float path's bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backbones.packed import PackedConv
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
    """``embed`` of a ``ResNet`` with binary blocks packed and fused (a callable, inference only)."""

    def __init__(self, backbone: ResNet, path: str):
        self.path = path
        self.stem = backbone.stem
        self.blocks = [_Block(b) for layer in (backbone.layer1, backbone.layer2) for b in layer]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        x = self.stem(x.float().contiguous(memory_format=torch.channels_last))
        xp = None
        for i, block in enumerate(self.blocks):
            pack_next = i + 1 < len(self.blocks) and self.blocks[i + 1].binary
            x, xp = block(x, xp, pack_next, self.path, threads, last=i + 1 == len(self.blocks))
        return x
