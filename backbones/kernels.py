"""Packed XNOR-popcount kernels: the C extension's dispatch paths and a pure-PyTorch fallback.

Bit convention (bitops.c): a set bit is a negative value (``!(x >= 0)``, so sign(0) = +1); unused tail
bits are 0 in inputs and weights, so ``dot = K - 2 * popcount(x ^ w)`` never counts them.
``B2TRACK_KERNEL=avx512|avx2|portable|torch`` forces a path; by default the fastest the CPU runs.
The ``avx2`` path keeps activations as nibble bytes (``packed_format``), the others as 64-bit words;
``as_words`` converts either to words (tests compare paths that way).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backbones.cli import UsageError

try:
    from backbones import _bitops
except ImportError:  # no compiler at install time: the torch fallback serves
    _bitops = None

PATH_IDS = {"portable": 0, "avx2": 1, "avx512": 2}
PATHS = ("avx512", "avx2", "portable", "torch")
ENV = "B2TRACK_KERNEL"
_warned = False


class KernelError(UsageError):
    """A kernel path that this CPU or this build cannot run."""


def available_paths() -> list[str]:
    """The paths this CPU and build run, fastest first (``torch`` always)."""
    native = [p for p in PATHS[:3] if _bitops is not None and _bitops.supported(PATH_IDS[p])]
    return [*native, "torch"]


def resolve_path(name: str | None = None) -> str:
    """The path to use: ``name``, else ``$B2TRACK_KERNEL``, else the fastest available."""
    global _warned
    name = name or os.environ.get(ENV) or None
    available = available_paths()
    if name is None:
        if _bitops is None and not _warned:
            print("warning: b2track's C kernels are not built; using the slower PyTorch packed fallback",
                  file=sys.stderr)
            _warned = True
        return available[0]
    if name not in available:
        kind = "unknown kernel path" if name not in PATHS else "kernel path not available on this CPU/build"
        raise KernelError(f"{ENV}={name}: {kind}; available: {', '.join(available)}")
    return name


def keep_heap() -> bool:
    """Keep freed large blocks in the process heap (glibc), so per-frame activations stop page-faulting.

    Process-wide: every torch op in the process gains, the float paths included (fair comparisons).
    """
    return bool(_bitops is not None and _bitops.keep_heap())


def words(bits: int) -> int:
    """64-bit words holding ``bits`` bits."""
    return (bits + 63) // 64


# ---- sign packing ----

_SHIFTS = torch.arange(64, dtype=torch.int64)


def pack_torch(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Pure-PyTorch sign packing: NCHW float (any layout) -> [N, H, W, G, Wg] int64 words."""
    n, c, h, w = x.shape
    cg = c // groups
    wg = words(cg)
    neg = (~(x >= 0)).permute(0, 2, 3, 1).reshape(n, h, w, groups, cg).to(torch.int64)
    neg = F.pad(neg, (0, wg * 64 - cg)).reshape(n, h, w, groups, wg, 64)
    return (neg << _SHIFTS).sum(-1)  # distinct bits: the sum is the OR (bit 63 wraps to the sign bit)


def nibbles(bits: int) -> int:
    """4-bit nibbles holding ``bits`` bits."""
    return (bits + 3) // 4


def packed_format(path: str, channels: int) -> tuple[int, torch.dtype]:
    """(last dim, dtype) of a pixel group's packed signs on ``path``: 64-bit words, or on ``avx2`` one byte
    per 4 channels holding 4 x their bits (the kernel's table offset, so no shift at run time)."""
    return (nibbles(channels), torch.uint8) if path == "avx2" else (words(channels), torch.int64)


def pack(x: torch.Tensor, groups: int, path: str, threads: int, reuse: dict | None = None) -> torch.Tensor:
    """Sign-pack a float NCHW tensor whose memory is NHWC-strided (channel stride 1) on a C path:
    [N, H, W, G, last] in ``packed_format(path, C / G)``."""
    if path == "torch":
        return pack_torch(x, groups)
    n, c, h, w = x.shape
    _check_float_nhwc(x, "pack input")
    last, dtype = packed_format(path, c // groups)
    out = buffer(reuse, "pack", (n, h, w, groups, last), dtype)
    sn, _, sh, sw = x.stride()
    _bitops.pack(PATH_IDS[path], threads, x.data_ptr(), n, h, w, c, sn, sh, sw, out.data_ptr(), groups, last,
                 int(path == "avx2"))
    return out


def bn_pack(x: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, groups: int, path: str, threads: int,
            reuse: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch norm ``fma(x, mult, shift)`` per channel fused with sign-packing its result, in one pass.

    Returns the float result (NCHW, channels_last memory) and its packed signs as ``pack`` writes them.
    """
    n, c, h, w = x.shape
    if path == "torch":
        out = fma(x, mult.view(1, -1, 1, 1), shift.view(1, -1, 1, 1))
        out = out.contiguous(memory_format=torch.channels_last)
        return out, pack_torch(out, groups)
    _check_float_nhwc(x, "batch-norm input")
    last, dtype = packed_format(path, c // groups)
    out = buffer(reuse, "bn", (n, c, h, w), torch.float32, torch.channels_last)
    packed = buffer(reuse, "bn_pack", (n, h, w, groups, last), dtype)
    sn, _, sh, sw = x.stride()
    _bitops.bn_pack(PATH_IDS[path], threads, x.data_ptr(), n, h, w, c, sn, sh, sw,
                    _ptr(mult, torch.float32, (c,)), _ptr(shift, torch.float32, (c,)), out.data_ptr(),
                    packed.data_ptr(), groups, last, int(path == "avx2"))
    return out, packed


def as_words(packed: torch.Tensor, channels: int) -> torch.Tensor:
    """Any path's packed signs [..., last] of ``channels`` per group as 64-bit words [..., Wg]."""
    if packed.dtype == torch.int64:
        return packed
    bits = ((packed.to(torch.int64).unsqueeze(-1) >> 2) >> torch.arange(4)) & 1  # [..., ng, 4]
    bits = bits.flatten(-2)[..., :channels]
    bits = F.pad(bits, (0, words(channels) * 64 - channels)).unflatten(-1, (-1, 64))
    return (bits << _SHIFTS).sum(-1)


def _check_float_nhwc(x: torch.Tensor, what: str) -> None:
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.stride(1) != 1:
        raise ValueError(f"{what} must be a CPU float32 tensor in channels_last layout")


# ---- convolution ----

BLOCK = 16  # output channels per SIMD block (bitops.c)


def _dense_rows(words: torch.Tensor, kvalid: int, kernel: tuple[int, int]) -> torch.Tensor:
    """Re-pack [Cout, kh, kw, Wg] word-aligned weights with each tap's Cg bits back to back."""
    cout = words.shape[0]
    cg = kvalid // (kernel[0] * kernel[1])
    bits = ((words.unsqueeze(-1) >> torch.arange(64)) & 1).reshape(cout, kernel[0] * kernel[1], -1)[:, :, :cg]
    neg = bits.reshape(cout, kvalid).float()
    return pack_torch(-neg.reshape(cout, kvalid, 1, 1) + 0.5, 1).reshape(cout, -1)  # bit 1 where neg = 1


@dataclass
class PackedWeights:
    """Binary weights packed once: [Cout, kh, kw, Wg] int64 words, with the geometry the kernel needs.

    ``blocked`` is the AVX-512 copy: [G, ceil(Og / 16), K, 16] words, zero-filled past Og; ``nibbles``
    the AVX2 copy: [G, ceil(Og / 32), kh * kw, ceil(Cg / 4), 32] bytes, nibble j of each tap for 32 output
    channels (the AVX2 kernel reads the nibble-byte input of ``pack`` directly, no im2col).
    """

    words: torch.Tensor
    groups: int
    kernel: tuple[int, int]
    kvalid: int  # valid bits per output: Cin / groups * kh * kw
    blocked: torch.Tensor | None = None
    nibbles: torch.Tensor | None = None
    dense_words: torch.Tensor | None = None

    def __post_init__(self) -> None:
        g, cout = self.groups, self.words.shape[0]
        og = cout // g
        k = self.kernel_words().shape[1]
        nb = -(-og // BLOCK)
        grouped = F.pad(self.kernel_words().reshape(g, og, k), (0, 0, 0, nb * BLOCK - og))
        self.blocked = grouped.reshape(g, nb, BLOCK, k).transpose(2, 3).contiguous()
        nb = -(-og // 32)
        kh, kw = self.kernel
        ng = nibbles(self.kvalid // (kh * kw))
        nib = (self.words.unsqueeze(-1) >> (4 * torch.arange(16))) & 15  # [Cout, kh, kw, Wg, 16]
        nib = nib.reshape(g, og, kh * kw, -1)[..., :ng]
        nib = F.pad(nib, (0, 0, 0, 0, 0, nb * 32 - og))  # [G, nb * 32, taps, ng]
        self.nibbles = nib.reshape(g, nb, 32, kh * kw, ng).permute(0, 1, 3, 4, 2).to(torch.uint8).contiguous()

    @property
    def dense(self) -> bool:
        """Whether the C kernels read dense im2col rows (Cin / groups not a multiple of 64)."""
        kh, kw = self.kernel
        return (self.kvalid // (kh * kw)) % 64 != 0

    def kernel_words(self) -> torch.Tensor:
        """[Cout, K words] as the C kernels read a row: word-aligned taps, or the taps' bits back to back."""
        if self.dense_words is None:
            if not self.dense:
                self.dense_words = self.words.reshape(self.words.shape[0], -1)
            else:
                self.dense_words = _dense_rows(self.words, self.kvalid, self.kernel)
        return self.dense_words

    @property
    def out_channels(self) -> int:
        return self.words.shape[0]

    def for_path(self, path: str) -> torch.Tensor:
        """The layout the kernel of ``path`` reads."""
        return {"portable": self.kernel_words(), "avx2": self.nibbles}.get(path, self.blocked)


def pack_weights(weight: torch.Tensor, groups: int) -> PackedWeights:
    """Pack sign(W) (sign(0) = +1) of a [Cout, Cin/groups, kh, kw] weight."""
    cout, cg, kh, kw = weight.shape
    packed = pack_torch(weight.detach().float().contiguous(), 1)  # [Cout, kh, kw, 1, Wg]
    return PackedWeights(packed.reshape(cout, kh, kw, -1).contiguous(), groups, (kh, kw), cg * kh * kw)


_POPCOUNT8 = torch.tensor([i.bit_count() for i in range(256)], dtype=torch.int64)


def _popcount_torch(v: torch.Tensor) -> torch.Tensor:
    """Popcount of each int64 word (byte table), summed over the last dim."""
    return _POPCOUNT8[v.contiguous().view(torch.uint8).to(torch.int64)].sum(-1)


def conv_torch(xp: torch.Tensor, pw: PackedWeights, stride: tuple[int, int]) -> torch.Tensor:
    """Pure-PyTorch packed convolution: [N, H, W, G, Wg] words -> [N, OH, OW, Cout] int32 dot products."""
    kh, kw = pw.kernel
    g = pw.groups
    og = pw.out_channels // g
    cols = xp.unfold(1, kh, stride[0]).unfold(2, kw, stride[1])  # [N, OH, OW, G, Wg, kh, kw]
    n, oh, ow = cols.shape[:3]
    cols = cols.permute(0, 1, 2, 3, 5, 6, 4).reshape(n * oh * ow, g, 1, -1)
    wts = pw.words.reshape(g, og, -1)
    out = torch.empty((n * oh * ow, g, og), dtype=torch.int64)
    step = max(1, 2 ** 20 // max(1, g * og * wts.shape[-1]))
    for i in range(0, cols.shape[0], step):
        out[i:i + step] = _popcount_torch(cols[i:i + step] ^ wts)
    return (pw.kvalid - 2 * out).to(torch.int32).reshape(n, oh, ow, g * og)


@dataclass
class Epilogue:
    """Float epilogue: out = fma(scale * (dot - corr), mult, shift) [+ residual], optionally sign-packed.

    ``scale`` is alpha; (mult, shift) is the batch norm as torch's CPU kernel rounds it (one fused
    multiply-add), so outputs are bit-equal to the float-simulated unit and no sign decision flips.
    """

    scale: torch.Tensor
    mult: torch.Tensor
    shift: torch.Tensor
    residual: torch.Tensor | None = None  # NCHW view with NHWC strides, already cropped to the output
    pack_groups: int = 0  # > 0: also return the output sign-packed with this many groups
    reuse: dict | None = None  # outputs written into tensors kept here across calls (no page faults)


def conv(xp: torch.Tensor, pw: PackedWeights, stride: tuple[int, int], path: str, threads: int,
         corr: torch.Tensor | None = None, epilogue: Epilogue | None = None):
    """Packed convolution of padded packed input ``xp`` [N, H, W, G, Wg].

    Without ``epilogue``: int32 dot products [N, OH, OW, Cout]. With one: the float output as an NCHW
    tensor in channels_last memory, and its packed signs (or None) when ``epilogue.pack_groups``.
    ``corr`` [OH, OW, Cout] int32 is subtracted from every dot (exact padding).
    """
    if path == "torch":
        return _conv_torch_epilogue(xp, pw, stride, corr, epilogue)
    n, h, w, g, wg = xp.shape
    kh, kw = pw.kernel
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    cout = pw.out_channels
    last, dtype = packed_format(path, pw.kvalid // (kh * kw))
    if g != pw.groups or last != wg or xp.dtype != dtype or oh < 1 or ow < 1:
        raise ValueError(f"packed input {tuple(xp.shape)} does not fit weights {tuple(pw.words.shape)}")
    corr_ptr = _ptr(corr, torch.int32, (oh, ow, cout))
    if epilogue is None:
        out = torch.empty((n, oh, ow, cout), dtype=torch.int32)
        _call_conv(path, threads, xp, pw, n, h, w, g, wg, stride, oh, ow, corr_ptr, out.data_ptr(), 0)
        return out
    out = buffer(epilogue.reuse, "out", (n, cout, oh, ow), torch.float32, torch.channels_last)
    res = epilogue.residual
    res_args = (0, 0, 0, 0)
    if res is not None:
        _check_float_nhwc(res, "residual")
        if tuple(res.shape) != (n, cout, oh, ow):
            raise ValueError(f"residual {tuple(res.shape)} does not match output {(n, cout, oh, ow)}")
        res_args = (res.data_ptr(), res.stride(0), res.stride(2), res.stride(3))
    packed, pack_args = None, (0, 0, 0)
    if epilogue.pack_groups:
        pg = epilogue.pack_groups
        plast, pdtype = packed_format(path, cout // pg)
        packed = buffer(epilogue.reuse, "packed", (n, oh, ow, pg, plast), pdtype)
        pack_args = (packed.data_ptr(), pg, plast)
    _call_conv(path, threads, xp, pw, n, h, w, g, wg, stride, oh, ow, corr_ptr, 0, out.data_ptr(),
               _ptr(epilogue.scale, torch.float32, (cout,)), _ptr(epilogue.mult, torch.float32, (cout,)),
               _ptr(epilogue.shift, torch.float32, (cout,)), res_args, pack_args)
    return out, packed


def buffer(reuse: dict | None, name: str, shape: tuple[int, ...], dtype: torch.dtype,
           fmt: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """A fresh tensor, or (with ``reuse``) the one kept there for this name and shape.

    Reusing the large intermediates of a backbone avoids the allocator's page faults on every call.
    """
    if reuse is None:
        return torch.empty(shape, dtype=dtype, memory_format=fmt)
    key = (name, shape)
    if key not in reuse:
        reuse[key] = torch.empty(shape, dtype=dtype, memory_format=fmt)
    return reuse[key]


def _ptr(t: torch.Tensor | None, dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    if t is None:
        return 0
    if t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous():
        raise ValueError(f"kernel argument must be a contiguous {dtype} tensor of shape {shape}")
    return t.data_ptr()


def _call_conv(path, threads, xp, pw, n, h, w, g, wg, stride, oh, ow, corr, out_int, out, scale=0, mult=0,
               shift=0, res_args=(0, 0, 0, 0), pack_args=(0, 0, 0)) -> None:
    if not xp.is_contiguous():
        raise ValueError("packed input must be a contiguous tensor")
    kh, kw = pw.kernel
    nib = path == "avx2"
    _bitops.conv(PATH_IDS[path], threads, xp.data_ptr(), pw.for_path(path).data_ptr(), n, h, w, g, wg,
                 pw.out_channels // g, kh, kw, stride[0], stride[1], oh, ow, pw.kvalid, corr, out_int, out,
                 scale, mult, shift, *res_args, *pack_args, int(pw.dense), wg if nib else 0, int(nib))


def fma(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x * a + b rounded once to float32 (a fused multiply-add, emulated in float64)."""
    return (x.double() * a.double() + b.double()).float()


def _conv_torch_epilogue(xp, pw, stride, corr, epilogue):
    dots = conv_torch(xp, pw, stride)
    if corr is not None:
        dots = dots - corr
    if epilogue is None:
        return dots
    out = fma(epilogue.scale * dots.float(), epilogue.mult, epilogue.shift).permute(0, 3, 1, 2)
    if epilogue.residual is not None:
        out = out + epilogue.residual
    out = out.contiguous(memory_format=torch.channels_last)
    return out, (pack_torch(out, epilogue.pack_groups) if epilogue.pack_groups else None)
