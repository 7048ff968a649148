"""SiamFC-style curation: pre-crop every valid frame to 255x255 around its target, once.

    python -m tracker.curate --data ROOT --split splits/train.txt --out CURATED

The result is itself a dataset in GOT-10k layout (``CURATED/train/<seq>/*.jpg`` + ``groundtruth.txt``,
0-based boxes centred in each crop, ``list.txt``), so ``tracker.train --data CURATED`` reads it like any
other root. Training pairs are drawn exactly as from the originals (each crop already holds the
context region at the scale the pair transform uses), but each step decodes two small JPEGs instead of
two full frames, and the whole training set fits in a few tens of MB. Frames without a valid target
are left out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from backbones.cli import ArgumentParser, UsageError, atomic_dir, check_output_dir, int_range, run_cli
from tracker.sequences import Sequence, load_sequences, read_frame

MIN_FRAMES = 2  # a training pair needs two annotated frames


def curate_sequence(seq: Sequence, out_dir: Path, quality: int) -> int:
    """Write one sequence's crops and ``groundtruth.txt``; returns the number of frames written."""
    from tracker.ops import EXEMPLAR_SIZE, INSTANCE_SIZE, box_center, crop_and_resize, exemplar_size

    out_dir.mkdir(parents=True)
    rows = []
    for k in np.flatnonzero(seq.valid):
        image = read_frame(seq.frames[k])
        box = seq.boxes[k]
        context = exemplar_size(box[2:])
        patch = crop_and_resize(image, box_center(box), context * INSTANCE_SIZE / EXEMPLAR_SIZE,
                                INSTANCE_SIZE, image.mean(axis=(0, 1)))
        scale = EXEMPLAR_SIZE / context
        w, h = box[2] * scale, box[3] * scale
        c = (INSTANCE_SIZE - 1) / 2
        rows.append(f"{c - (w - 1) / 2:.4f},{c - (h - 1) / 2:.4f},{w:.4f},{h:.4f}")
        cv2.imwrite(str(out_dir / f"{len(rows):08d}.jpg"), patch, [cv2.IMWRITE_JPEG_QUALITY, quality])
    (out_dir / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return len(rows)


def curable(sequences: list[Sequence]) -> list[Sequence]:
    """The sequences with at least ``MIN_FRAMES`` annotated frames; UsageError when there are none."""
    if not sequences:
        raise UsageError("nothing to curate: no sequences (is the split file empty?)")
    kept = [seq for seq in sequences if int(seq.valid.sum()) >= MIN_FRAMES]
    if not kept:
        raise UsageError(f"nothing to curate: none of the {len(sequences)} sequences has {MIN_FRAMES} "
                         "or more annotated frames")
    return kept


def curate(sequences: list[Sequence], out: Path, quality: int = 85) -> int:
    """Curate ``sequences`` into the new folder ``out`` (built in a temporary folder, then renamed);
    returns the number of frames written."""
    kept = curable(sequences)
    with atomic_dir(out) as tmp:
        total = 0
        for seq in tqdm(kept, desc="curate", unit="seq", disable=None):
            total += curate_sequence(seq, tmp / "train" / seq.name, quality)
        (tmp / "train" / "list.txt").write_text("\n".join(seq.name for seq in kept) + "\n")
    return total


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tracker.curate``."""
    parser = ArgumentParser(prog="python -m tracker.curate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, metavar="ROOT", help="tracking data root")
    parser.add_argument("--split", metavar="FILE", help="file listing sequence folders relative to --data")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="new folder for the curated dataset (not inside --data)")
    parser.add_argument("--quality", type=int_range(0, 100), default=85, metavar="Q",
                        help="JPEG quality of the crops, 0 to 100 (default 85)")
    return parser


def check_out(out: Path, data: Path, split: str | None) -> None:
    """Before any work: ``out`` is a new, writable folder, neither inside the data root nor holding it."""
    check_output_dir(out, "--out", inputs=[data, split])
    if out.exists():
        raise UsageError(f"--out {out}: already exists; curate into a new folder")
    if data.resolve() in out.resolve().parents:
        raise UsageError(f"--out {out}: is inside the data root {data}; a later scan of it would find the "
                         "crops as sequences")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    if not data.is_dir():
        raise UsageError(f"tracking data root not found: {data}")
    check_out(out, data, args.split)
    frames = curate(load_sequences(data, args.split), out, args.quality)
    print(f"wrote {frames} crops to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
