"""Train a SiamFC tracker on a masked B2NN backbone (CPU, GPU, or torchrun DistributedDataParallel).

    python -m tracker.train --backbone alexnet --mask fp --data ROOT --split splits/train.txt \
        --iterations 1000 --batch-size 8 --out runs/fp
    torchrun --nproc_per_node=2 -m tracker.train ...   # same checkpoint format

RUN_DIR/checkpoint.safetensors + .json hold the latest weights (every --save-every iterations and at the
end); RUN_DIR/train_state.pt holds optimizer, scheduler and iteration for --resume.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from backbones.cli import UsageError, atomic_path, code_version, run_cli
from backbones.mask import MaskError, resolve_mask
from backbones.registry import list_backbones
from tracker.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tracker.init import kaiming_init, load_init
from tracker.loss import balanced_logistic_loss, distillation_loss
from tracker.model import SiamFC, build_siamfc
from tracker.ops import PIXEL_MEAN, PIXEL_STD
from tracker.pairs import OffsetSampler, PairDataset
from tracker.sequences import load_sequences

CHECKPOINT = "checkpoint.safetensors"
STATE = "train_state.pt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracker.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backbone", required=True, help=f"one of {', '.join(list_backbones())}")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier")
    p.add_argument("--mask", default="fp", help="fp, binary, or a mask JSON file for this backbone and width")
    p.add_argument("--data", required=True, help="root holding sequences (OTB, VOT, UAV123, DTB70, GOT-10k)")
    p.add_argument("--split", help="file listing sequence folders relative to --data (e.g. splits/train.txt)")
    p.add_argument("--iterations", type=int, required=True, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step and process")
    p.add_argument("--out", required=True, help="run directory for checkpoints")
    p.add_argument("--init-from", help="start from this checkpoint (.safetensors, tracker or classification, "
                   "or a siamfc-pytorch .pth for the FP alexnet)")
    p.add_argument("--teacher", help="FP tracker checkpoint whose response maps the student also learns")
    p.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation loss")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's last checkpoint")
    p.add_argument("--lr", type=float, default=1e-2, help="initial learning rate")
    p.add_argument("--lr-end", type=float, default=1e-5, help="final learning rate (exponential decay)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                   help="SGD with momentum 0.9 (SiamFC's), or Adam (ReActNet's choice for binary units)")
    p.add_argument("--color-jitter", type=float, default=0.0, help="per-channel gain jitter (0 = off)")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint every K iterations")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="data-loading processes per training process")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    return p


def normalize(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC BGR patches -> the networks' normalised NCHW float input."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return ((x - PIXEL_MEAN) / PIXEL_STD).contiguous(memory_format=torch.channels_last)


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(choice: str, rank: int) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _check(args: argparse.Namespace) -> None:
    if args.iterations < 1 or args.batch_size < 1 or args.save_every < 1:
        raise UsageError("--iterations, --batch-size and --save-every must be at least 1")
    if not 0 < args.lr_end <= args.lr:
        raise UsageError(f"need 0 < --lr-end <= --lr, got {args.lr_end} and {args.lr}")
    if not Path(args.data).is_dir():
        raise UsageError(f"tracking data root not found: {args.data}")


def _meta(args: argparse.Namespace, mask_json: dict, iteration: int, wall: float, pairs_per_s: float) -> dict:
    keep = ("optimizer", "lr", "lr_end", "weight_decay", "batch_size", "color_jitter", "init_from", "teacher",
            "distill_weight", "iterations")
    return {"backbone": mask_json["backbone"], "width": mask_json["width"], "mask": mask_json,
            "training": {k: getattr(args, k) for k in keep} | {"momentum": 0.9 if args.optimizer == "sgd" else None,
                                                               "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                                                               "wall_seconds": round(wall, 1),
                                                               "pairs_per_second": round(pairs_per_s, 2)},
            "data": {"root": str(args.data), "split": args.split}, "iterations": iteration,
            "seed": args.seed, "code_version": code_version(), "metrics": {}}


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def train(args: argparse.Namespace, stop_at: int | None = None) -> int:
    """Run training; ``stop_at`` ends the run early at that iteration (as an interruption would)."""
    _check(args)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's kill saves a checkpoint like Ctrl-C
    rank, world = _distributed()
    device = _device(args.device, rank)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        mask = resolve_mask(args.mask, args.backbone, args.width)
    except MaskError as err:
        raise UsageError(str(err)) from None
    sequences = load_sequences(args.data, args.split)
    dataset = PairDataset(sequences, seed=args.seed, color_jitter=args.color_jitter)

    torch.manual_seed(args.seed)
    model = build_siamfc(mask)
    kaiming_init(model)
    if args.init_from:
        load_init(model, args.init_from)
    model.to(device).train()
    model = model.to(memory_format=torch.channels_last)
    teacher = load_checkpoint(args.teacher, device)[0] if args.teacher else None

    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    gamma = math.exp(math.log(args.lr_end / args.lr) / max(1, args.iterations - 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    out = Path(args.out)
    start = 0
    if args.resume:
        start = _restore(out, model, optimizer, scheduler, device)
    net: Any = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model

    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                        sampler=OffsetSampler(start, args.iterations, args.batch_size, rank, world),
                        persistent_workers=False, pin_memory=device.type == "cuda")
    stop = min(args.iterations, stop_at) if stop_at is not None else args.iterations
    bar = tqdm(total=args.iterations, initial=start, disable=rank != 0, desc="train", unit="it",
               dynamic_ncols=True, file=sys.stderr)
    iteration, t0, pairs = start, time.perf_counter(), 0
    wall_before = _previous_wall(out) if args.resume else 0.0

    def save() -> None:
        if rank == 0:
            wall = wall_before + time.perf_counter() - t0
            rate = pairs * world / max(time.perf_counter() - t0, 1e-9)
            _save(out, model, optimizer, scheduler, iteration, _meta(args, mask.to_json(), iteration, wall, rate))

    try:
        for z, x in loader:
            if iteration >= stop:
                break
            logits = net(normalize(z, device), normalize(x, device))
            loss = balanced_logistic_loss(logits)
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(normalize(z, device), normalize(x, device))
                loss = loss + args.distill_weight * distillation_loss(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            iteration += 1
            pairs += z.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", pairs_s=f"{pairs * world / (time.perf_counter() - t0):.1f}",
                            lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if iteration % args.save_every == 0 or iteration == stop:
                save()
    except KeyboardInterrupt:
        save()
        bar.close()
        if rank == 0:
            print(f"interrupted at iteration {iteration}; continue with --resume", file=sys.stderr)
        return 130
    finally:
        bar.close()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0 and iteration == args.iterations:
        print(f"done: {iteration} iterations -> {out / CHECKPOINT}", file=sys.stderr)
    return 0


def _previous_wall(out: Path) -> float:
    """Wall seconds recorded by the checkpoint a resumed run continues (0 when unknown)."""
    try:
        return float(json.loads((out / "checkpoint.json").read_text())["training"]["wall_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0.0


def _save(out: Path, model: SiamFC, optimizer, scheduler, iteration: int, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / CHECKPOINT, model, meta)
    with atomic_path(out / STATE) as tmp:
        torch.save({"iteration": iteration, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict()}, tmp)


def _restore(out: Path, model: SiamFC, optimizer, scheduler, device: torch.device) -> int:
    ckpt, state_path = out / CHECKPOINT, out / STATE
    if not ckpt.is_file() or not state_path.is_file():
        raise UsageError(f"--resume: no checkpoint in {out} (expected {CHECKPOINT} and {STATE})")
    saved, meta = load_checkpoint(ckpt, device)
    if meta["mask"]["units"] != model.backbone.mask_states():
        raise CheckpointError(f"--resume: {ckpt} was trained with another mask")
    model.load_state_dict(saved.state_dict())
    try:
        state = torch.load(state_path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged state file is a user-facing error
        raise CheckpointError(f"--resume: {state_path} is unreadable: {err}") from None
    if state["iteration"] != meta["iterations"]:
        raise CheckpointError(f"--resume: {state_path} (iteration {state['iteration']}) and {ckpt} "
                              f"(iteration {meta['iterations']}) disagree")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["iteration"])


def main(argv: list[str] | None = None) -> int:
    return train(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
