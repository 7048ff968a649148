"""MixBin's tracking task: SiamFC pairs and loss, so masks can be searched on tracking data directly.

Implements ``mixbin.task.Task`` (``mixbin.search --task tracking --data ROOT``) on top of ``tracker``;
``mixbin.finetune`` trains it through the loop ``tracker.train`` uses. The sequences of
``ROOT/splits/train.txt`` are split, by sequence, into probe sequences (``tracker.sequences.split_held_out``: every 8th by name,
at least one: the held-out batch of the iterative / sensitivity probes) and the rest (training pairs);
``ROOT/splits/val.txt`` is for scoring only (``evaluate``). So selection never sees the evaluation data,
and nothing probed or scored is trained on.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from backbones.cli import UsageError
from backbones.mask import Mask
from mixbin.task import evaluating
from tracker.loss import POSITIVE_RADIUS, balanced_logistic_loss
from tracker.model import build_siamfc
from tracker.pairs import OffsetSampler, PairDataset
from tracker.sequences import load_sequences, split_held_out
from tracker.train import normalize

HELDOUT_SEED = 12345  # the held-out pairs are the same whatever a run's --seed
EVAL_PAIRS = 256


class TrackingTask:
    """SiamFC training pairs and balanced logistic loss on a tracking root with train / val splits."""

    name = "tracking"

    def __init__(self, data_root: str | Path, backbone: str, width: float = 1.0, input_size: int = 255,
                 batch_size: int = 8, device: str | torch.device = "cpu", seed: int = 0,
                 limit: int | None = None, workers: int = 0, split: str | Path | None = None):
        self.data_root = Path(data_root)
        splits = {name: self.data_root / "splits" / f"{name}.txt" for name in ("train", "val")}
        missing = [str(p) for p in splits.values() if not p.is_file()]
        if split is not None:  # training sequences from another list (load_sequences finds and checks it)
            splits["train"], missing = split, []  # val (scoring only) is read when first asked for
        if missing:
            raise UsageError(f"the tracking task needs {', '.join(missing)} (sequence folders, one per line)")
        self.backbone, self.width, self.batch_size = backbone, float(width), batch_size
        self.device, self.seed, self.workers = torch.device(device), seed, workers
        probe, fit = split_held_out(load_sequences(self.data_root, splits["train"]))
        self.train_pairs = PairDataset(fit, seed=seed)
        self.probe_pairs = PairDataset(probe, seed=HELDOUT_SEED)
        self._val_split, self._val_pairs, self._own_split = splits["val"], None, split is not None
        self.eval_pairs = min(EVAL_PAIRS, limit) if limit else EVAL_PAIRS
        self._heldout: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def val_pairs(self) -> PairDataset:
        """Fixed pairs of ROOT/splits/val.txt (scoring only), read on first use."""
        if self._val_pairs is None:
            self._val_pairs = PairDataset(load_sequences(self.data_root, self._val_split), seed=HELDOUT_SEED)
        return self._val_pairs

    def make_model(self, mask: Mask) -> nn.Module:
        """SiamFC on the mask's backbone, mask applied, on the task's device."""
        return build_siamfc(mask).to(self.device)

    def iterations_per_epoch(self) -> int:
        frames = sum(len(v) for v in self.train_pairs.valid_frames)
        return max(1, frames // self.batch_size)

    def _batches(self, dataset: PairDataset, count: int) -> DataLoader:
        sampler = OffsetSampler(0, count, self.batch_size)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers)

    def _input(self, patches: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return normalize(patches, model.backbone, self.device)

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless seeded training pairs; the same sequence on every call."""
        yield from self._batches(self.train_pairs, 2**40)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        z, x = batch
        logits = model(self._input(z, model), self._input(x, model))
        return balanced_logistic_loss(logits, model.backbone.total_stride)

    def heldout_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of pairs (32 at most) from the probe sequences: held out of training, not val."""
        if self._heldout is None:
            pairs = [self.probe_pairs[i] for i in range(min(32, self.eval_pairs))]
            self._heldout = tuple(torch.stack(t) for t in zip(*pairs, strict=True))  # type: ignore[assignment]
        return self._heldout

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """On fixed val pairs: mean loss, and accuracy = share of responses peaking within 16 px of the
        target."""
        loss, hits, total = 0.0, 0, 0
        radius = POSITIVE_RADIUS / model.backbone.total_stride
        with evaluating(model):
            for z, x in self._batches(self.val_pairs, -(-self.eval_pairs // self.batch_size)):
                logits = model(self._input(z, model), self._input(x, model))
                loss += float(balanced_logistic_loss(logits, model.backbone.total_stride)) * len(z)
                size = logits.shape[-1]
                peak = logits.flatten(1).argmax(1)
                rows, cols = peak // size - (size - 1) / 2, peak % size - (size - 1) / 2
                hits += int(((rows.abs() + cols.abs()) <= radius).sum())
                total += len(z)
        return {"accuracy": hits / total, "loss": loss / total, "pairs": total}

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "data": self.data_root.name, "data_root": str(self.data_root),
                "sequences": {"train": len(self.train_pairs.sequences),
                              "probe": len(self.probe_pairs.sequences),
                              "val": None if self._val_pairs is None and self._own_split
                              else len(self.val_pairs.sequences)},
                "probe_sequences": [seq.name for seq in self.probe_pairs.sequences],
                "batch_size": self.batch_size, "eval_pairs": self.eval_pairs}
