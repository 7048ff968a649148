"""Classification training / fine-tuning of a masked backbone (FP pre-training for the tracker and for the
baselines' common starting point), through the same loop as every mask source.

    python -m mixbin.train --data ../shared/data/classification/cifar10 --backbone resnet --width 0.5 \
        --mask fp --epochs 10 --out runs/resnet-0.5-fp
writes RUN/checkpoint.safetensors (``backbone.*`` and ``head.*`` tensors) + RUN/checkpoint.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from backbones.checkpoint import checkpoint_files, save_checkpoint
from backbones.cli import ArgumentParser, UsageError, check_output_dir, code_version, run_cli
from backbones.mask import resolve_mask
from mixbin.common import (
    add_length_args,
    add_lr_arg,
    add_task_args,
    build_task,
    check_init_from,
    initial_model,
)
from mixbin.finetune import finetune
from mixbin.provenance import command_line, seed_everything
from mixbin.task import epochs_to_iterations

PROG = "python -m mixbin.train"
DEFAULT_EPOCHS = 10.0
CHECKPOINT = "checkpoint.safetensors"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Train or fine-tune a masked backbone with a linear head on ImageFolder classification "
                    "data; writes RUN/checkpoint.safetensors + RUN/checkpoint.json, whose backbone.* "
                    "tensors load into the tracker's SiamFC.backbone (--init-from).")
    add_task_args(parser, task_choice=False, backbone_required=False)
    parser.add_argument("--mask", default="fp", metavar="MASK|fp|binary",
                        help="mask JSON file (sets backbone and width), or fp / binary with --backbone "
                             "(default fp)")
    add_length_args(parser, "training", DEFAULT_EPOCHS)
    add_lr_arg(parser)
    parser.add_argument("--init-from", metavar="CKPT", default=None,
                        help="start from this .safetensors checkpoint (same backbone and width)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder to write the checkpoint into")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.backbone is None and args.mask in ("fp", "binary"):
        raise UsageError(f"--mask {args.mask} needs --backbone NAME")
    mask = resolve_mask(args.mask, args.backbone, args.width)
    args.backbone, args.width = mask.backbone, mask.width
    mask_file = None if args.mask in ("fp", "binary") else args.mask
    check_output_dir(args.out, "--out", inputs=[*checkpoint_files(args.init_from), mask_file, args.data])
    check_init_from(args.init_from, mask.backbone, mask.width)
    task = build_task(args)
    iterations = epochs_to_iterations(task, args.epochs, args.iterations, DEFAULT_EPOCHS)
    seed_everything(args.seed)
    model = initial_model(task, mask, args.init_from)
    last = finetune(task, model, iterations, args.lr, args.seed, desc="train")
    metrics = task.evaluate(model)
    path = Path(args.out) / CHECKPOINT
    meta = {"method": "train", **task.describe(), "split": "train", "iterations": iterations,
            "seed": args.seed,
            "command": command_line("mixbin.train", argv), "code_version": code_version(),
            "init_from": args.init_from, "settings": {"lr": args.lr, "batch_size": args.batch_size,
                                                      "input_size": args.input_size, "optimizer": "adam",
                                                      "schedule": "cosine", "last_loss": last},
            "metrics": metrics, "wall_time_s": round(time.perf_counter() - started, 2)}
    save_checkpoint(path, model, mask, meta)
    print(f"wrote {path}: {mask.backbone} width {mask.width:g}, budget {mask.budget['achieved']:.4f}, "
          f"{iterations} iterations, test accuracy {metrics['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
