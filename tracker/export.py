"""Deploy checkpoints: an inference-only copy of a tracker that stores binary weights as bits.

``python -m tracker.export --checkpoint CKPT --out DEPLOY.safetensors`` keeps what inference reads: the
fixed layers, the FP units (conv + FP batch norm) and, for each binary unit, sign(W) packed 1 bit per
weight (``<unit>.conv.weight.bits``, numpy packbits order of the flattened weight, sign(0) = +1), its
per-channel alpha (``.weight.alpha``) and its binary batch norm. The sidecar has ``kind: "deploy"``.
``load_deploy`` rebuilds the network with W = alpha * sign, so both kernel paths track as the source.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backbones.checkpoint import (
    CheckpointError,
    checkpoint_files,
    read_checkpoint,
    sidecar_path,
    write_checkpoint,
)
from backbones.cli import ArgumentParser, check_output_file, code_version, run_cli
from backbones.mask import parse_mask
from backbones.quantizers import weight_scale
from tracker.checkpoint import load_checkpoint
from tracker.model import SiamFC, build_siamfc

DEPLOY_FORMAT = "b2track-deploy/1"  # the tensor layout of kind "deploy": packed sign bits + alpha
KIND = "deploy"


def is_deploy(path: str | Path) -> bool:
    """Whether ``path``'s sidecar marks a deploy checkpoint (False when unreadable: the loader says why)."""
    try:
        return json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def _unit_prefixes(model: SiamFC) -> dict[str, str]:
    """{state-dict prefix of each unit: its state}."""
    return {f"backbone.{name}.": unit.state for name, unit in model.backbone.units().items()}


def _needed(key: str, units: dict[str, str]) -> bool:
    """Whether inference reads ``key`` (drops the unused path's batch norm and the BN step counters)."""
    if key.endswith("num_batches_tracked"):
        return False
    for prefix, state in units.items():
        if key.startswith(prefix):
            return not key.startswith(prefix + ("bn_fp." if state == "binary" else "bn_bin."))
    return True


def deploy_tensors(model: SiamFC) -> dict[str, torch.Tensor]:
    """The tensors of a deploy file: binary weights as packed bits + alpha, the rest as stored."""
    units = _unit_prefixes(model)
    out = {}
    for key, value in model.state_dict().items():
        if not _needed(key, units):
            continue
        prefix = next((p for p, s in units.items() if s == "binary" and key == p + "conv.weight"), None)
        if prefix is None:
            out[key] = value.detach().cpu().contiguous()
            continue
        w = value.detach().cpu().float()
        bits = np.packbits((w < 0).numpy().reshape(-1))  # 1 = negative (sign(0) = +1)
        out[key + ".bits"] = torch.from_numpy(bits)
        out[key + ".alpha"] = _inference_scale(w).contiguous()
    return out


def export_deploy(checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the deploy checkpoint of ``checkpoint`` to ``out`` (+ sidecar); returns its sidecar."""
    model, meta = load_checkpoint(checkpoint)
    tensors = deploy_tensors(model)
    mask = meta["mask"]
    units = model.backbone.units()
    binary = [n for n, u in units.items() if u.state == "binary"]
    n_bits = sum(units[n].conv.weight.numel() for n in binary)
    bit_bytes = sum(tensors[f"backbone.{n}.conv.weight.bits"].numel() for n in binary)
    side = {"deploy_format": DEPLOY_FORMAT, "source": str(checkpoint), "code_version": code_version(),
            "binary_weights": n_bits,
            "bits_per_binary_weight": round(8 * bit_bytes / n_bits, 4) if n_bits else None,
            "metrics": meta.get("metrics", {})}
    if "tracking" in meta:  # the model's calibrated tracker settings travel with it
        side["tracking"] = meta["tracking"]
    write_checkpoint(out, tensors, parse_mask(mask, f"{sidecar_path(checkpoint)} mask"), side, KIND)
    return side


def _inference_scale(w: torch.Tensor) -> torch.Tensor:
    """alpha as the tracker computes it: on the channels_last weight (the reduction order matters)."""
    if w.dim() == 4:
        w = w.contiguous(memory_format=torch.channels_last)
    return weight_scale(w).flatten()


def _bisect_one(signs, mags, alpha, e: int, todo: torch.Tensor, shape) -> None:
    """Set weight ``e`` of the ``todo`` channels to the magnitude whose computed mean is alpha, if any.

    The computed mean is monotone in one weight, so bisection finds the smallest reaching alpha.
    """
    def scale_with(value: torch.Tensor) -> torch.Tensor:
        trial = mags.clone()
        trial[:, e] = value
        return _inference_scale((signs * trial).view(shape))

    reach = 8 * torch.finfo(torch.float32).eps * alpha * signs.shape[1]
    lo, hi = alpha - reach, alpha + reach
    for _ in range(48):
        mid = (lo + hi) / 2
        low = scale_with(mid) < alpha
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    hit = todo & (scale_with(hi) == alpha)
    mags[hit, e] = hi[hit]


def _binary_weight(tensors: dict[str, torch.Tensor], key: str, shape: torch.Size, path) -> torch.Tensor:
    """alpha * sign(W) from the bits, one weight per channel nudged so that alpha comes back bit-exact."""
    bits, alpha = tensors.pop(key + ".bits", None), tensors.pop(key + ".alpha", None)
    n = math.prod(shape)
    if bits is None or alpha is None or bits.dtype != torch.uint8 or bits.numel() != (n + 7) // 8 \
            or alpha.shape != (shape[0],) or alpha.dtype != torch.float32:
        raise CheckpointError(f"deploy checkpoint {path}: binary weight {key} is missing or the wrong size")
    neg = np.unpackbits(bits.numpy(), count=n).reshape(shape[0], -1)
    signs = torch.from_numpy(1.0 - 2.0 * neg.astype(np.float32))
    mags = alpha.view(-1, 1).repeat(1, signs.shape[1])
    for e in range(min(16, signs.shape[1])):  # the computed mean can skip alpha: then try another weight
        todo = _inference_scale((signs * mags).view(shape)) != alpha
        if not todo.any():
            break
        _bisect_one(signs, mags, alpha, e, todo, shape)
    return (signs * mags).view(shape)


def load_deploy(path: str | Path, device: str | torch.device = "cpu") -> tuple[SiamFC, dict[str, Any]]:
    """Rebuild the SiamFC network of a deploy checkpoint (eval mode); bad files are one clear line."""
    ckpt = read_checkpoint(path, kind=KIND)
    meta, mask, tensors = ckpt.sidecar, ckpt.mask, dict(ckpt.tensors)
    if meta.get("deploy_format") != DEPLOY_FORMAT:
        raise CheckpointError(f"deploy checkpoint {path}: its tensors are not in the {DEPLOY_FORMAT} layout")
    model = build_siamfc(mask)
    units = _unit_prefixes(model)
    state = model.state_dict()
    for key, value in state.items():
        if not _needed(key, units):
            continue
        if units.get(key.removesuffix("conv.weight")) == "binary":
            tensors[key] = _binary_weight(tensors, key, value.shape, path)
        got = tensors.get(key)
        if got is None or got.shape != value.shape:
            raise CheckpointError(f"deploy checkpoint {path}: tensor {key} is missing or the wrong shape for "
                                  f"{mask.backbone} width {mask.width:g}")
        state[key] = got
    extra = sorted(set(tensors) - set(state))
    if extra:
        raise CheckpointError(f"deploy checkpoint {path}: unexpected tensor {extra[0]} (another backbone?)")
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m tracker.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="tracker checkpoint (.safetensors)")
    p.add_argument("--out", required=True, metavar="DEPLOY.safetensors", help="deploy checkpoint to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not str(args.out).endswith(".safetensors"):
        raise CheckpointError(f"--out must end in .safetensors: {args.out}")
    check_output_file(args.out, "--out", inputs=checkpoint_files(args.checkpoint))
    side = export_deploy(args.checkpoint, args.out)
    src, dst = Path(args.checkpoint).stat().st_size, Path(args.out).stat().st_size
    print(f"wrote {args.out}: {dst:,} bytes ({dst / src:.3f} of {src:,}), {side['binary_weights']:,} binary "
          f"weights at {side['bits_per_binary_weight']} bits each")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
