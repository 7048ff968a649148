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
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from backbones.cli import UsageError, run_cli
from tracker.ops import EXEMPLAR_SIZE, INSTANCE_SIZE, box_center, crop_and_resize, exemplar_size
from tracker.sequences import Sequence, load_sequences, read_frame


def curate_sequence(seq: Sequence, out_dir: Path, quality: int) -> int:
    """Write one sequence's crops and ``groundtruth.txt``; returns the number of frames written."""
    out_dir.mkdir(parents=True)
    rows = []
    for k in np.flatnonzero(seq.valid):
        image = read_frame(seq.frames[k])
        box = seq.boxes[k]
        context = exemplar_size(box[2:])
        patch = crop_and_resize(image, box_center(box), context * INSTANCE_SIZE / EXEMPLAR_SIZE, INSTANCE_SIZE,
                                image.mean(axis=(0, 1)))
        scale = EXEMPLAR_SIZE / context
        w, h = box[2] * scale, box[3] * scale
        c = (INSTANCE_SIZE - 1) / 2
        rows.append(f"{c - (w - 1) / 2:.4f},{c - (h - 1) / 2:.4f},{w:.4f},{h:.4f}")
        cv2.imwrite(str(out_dir / f"{len(rows):08d}.jpg"), patch, [cv2.IMWRITE_JPEG_QUALITY, quality])
    (out_dir / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return len(rows)


def curate(sequences: list[Sequence], out: Path, quality: int = 85) -> int:
    """Curate ``sequences`` into ``out`` (built in a temporary folder, then renamed); returns frames."""
    if out.exists():
        raise UsageError(f"output folder already exists: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        total, names = 0, []
        for seq in tqdm(sequences, desc="curate", unit="seq"):
            if int(seq.valid.sum()) < 2:
                continue
            total += curate_sequence(seq, tmp / "train" / seq.name, quality)
            names.append(seq.name)
        (tmp / "train" / "list.txt").write_text("\n".join(names) + "\n")
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracker.curate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="tracking data root")
    parser.add_argument("--split", help="file listing sequence folders relative to --data")
    parser.add_argument("--out", required=True, help="new folder for the curated dataset")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the crops")
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        raise UsageError(f"tracking data root not found: {args.data}")
    frames = curate(load_sequences(args.data, args.split), Path(args.out), args.quality)
    print(f"wrote {frames} crops to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
