"""Tasks: what search, baselines and fine-tuning need from a dataset and a loss, so they stay generic.

A task provides (see ``Task``): ``make_model(mask)`` -> a module with ``.backbone`` (a registry backbone
with the mask applied) on ``task.device``; ``train_batches()`` -> an endless, seeded iterator of batches
(the same sequence on every call, so every mask source fine-tunes on the same data);
``loss(model, batch)`` -> a scalar tensor; ``evaluate(model)`` -> a dict of metrics (with ``loss``);
``heldout_batch()`` -> one fixed batch never trained on; ``iterations_per_epoch()``; ``describe()`` ->
provenance (data name and root, split sizes, settings). Attributes: ``name``, ``backbone``, ``width``,
``device``, ``seed``.

Two tasks implement it: ``ClassificationTask`` (below) and ``mixbin.tracking.TrackingTask``, whose models
are ``tracker.model.SiamFC`` (its ``.backbone`` carries the mask), batches exemplar/search pairs from the
tracker's pair sampler, loss the tracker's balanced logistic loss, ``evaluate`` loss and peak accuracy on
held-out pairs. ``make_task`` builds either with the same keyword arguments; it imports the tracking task
only when asked for, so classification runs do not load the tracker's data readers.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backbones.base import BackboneError, Classifier
from backbones.cli import UsageError
from backbones.mask import Mask, build_masked_backbone
from backbones.registry import build_backbone
from mixbin.data import load_splits

TASKS = ("classification", "tracking")
SPLIT_SEED = 0  # the train / held-out / limit subsets are the same whatever a run's --seed


class Task(Protocol):
    """What ``mixbin.search``, ``mixbin.baseline`` and ``mixbin.finetune`` use; see the module docstring."""

    name: str
    backbone: str
    width: float
    device: torch.device
    seed: int

    def make_model(self, mask: Mask) -> nn.Module: ...
    def train_batches(self) -> Iterator[Any]: ...
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...
    def evaluate(self, model: nn.Module) -> dict[str, float]: ...
    def heldout_batch(self) -> Any: ...
    def iterations_per_epoch(self) -> int: ...
    def describe(self) -> dict[str, Any]: ...


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The block runs ``model`` in inference mode (batch norm on running statistics); its mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def check_input_size(backbone: str, width: float, input_size: int) -> None:
    """UsageError naming the backbone's valid range (``Backbone.check_input_size``) for ``input_size``."""
    try:
        build_backbone(backbone, width).check_input_size(input_size)
    except BackboneError as err:
        raise UsageError(f"--input-size: {err}") from None


class ClassificationTask:
    """Image classification on an ImageFolder root (train/ and test/ or val/), cross-entropy loss."""

    name = "classification"

    def __init__(self, data_root: str | Path, backbone: str, width: float = 1.0, input_size: int = 96,
                 batch_size: int = 64, device: str | torch.device = "cpu", seed: int = 0,
                 limit: int | None = None, workers: int = 0, heldout: int = 256):
        if batch_size < 1:
            raise UsageError(f"--batch-size must be positive, got {batch_size}")
        check_input_size(backbone, width, input_size)
        self.data_root = Path(data_root)
        self.backbone, self.width, self.input_size = backbone, float(width), input_size
        self.batch_size, self.device, self.seed = batch_size, torch.device(device), seed
        self.limit, self.workers = limit, workers
        self.train_set, self.heldout_set, self.test_set, self.classes = load_splits(
            data_root, input_size, limit, SPLIT_SEED, heldout)
        self._heldout: tuple[torch.Tensor, torch.Tensor] | None = None

    def make_model(self, mask: Mask) -> nn.Module:
        """A classifier on the mask's backbone and width with the mask applied, on the task's device."""
        return Classifier(build_masked_backbone(mask), len(self.classes)).to(self.device)

    def _loader(self, dataset: Dataset, shuffle: bool,
                generator: torch.Generator | None = None) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=self.workers, drop_last=shuffle and len(dataset) >= self.batch_size)

    def iterations_per_epoch(self) -> int:
        return max(1, len(self.train_set) // self.batch_size)

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled, augmented training batches; the same sequence on every call (seeded)."""
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield from self._loader(self.train_set, shuffle=True, generator=generator)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images.to(self.device)), labels.to(self.device))

    def heldout_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All held-out images (at most ``heldout``) as one fixed batch."""
        if self._heldout is None:
            loader = DataLoader(self.heldout_set, batch_size=len(self.heldout_set), num_workers=0)
            self._heldout = next(iter(loader))
        return self._heldout

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Top-1 accuracy and mean cross-entropy on the test split (BN in inference mode)."""
        correct, total, loss = 0, 0, 0.0
        with evaluating(model):
            for images, labels in self._loader(self.test_set, shuffle=False):
                logits = model(images.to(self.device))
                labels = labels.to(self.device)
                loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                correct += int((logits.argmax(1) == labels).sum())
                total += len(labels)
        return {"accuracy": correct / total, "loss": loss / total, "images": total}

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "data": self.data_root.name, "data_root": str(self.data_root),
                "images": {"train": len(self.train_set), "heldout": len(self.heldout_set),
                           "test": len(self.test_set)},
                "input_size": self.input_size, "batch_size": self.batch_size, "limit": self.limit}


def make_task(kind: str, **kwargs: Any) -> Task:
    """Build the named task ('classification' or 'tracking') with ``ClassificationTask``'s keywords."""
    if kind == "classification":
        return ClassificationTask(**kwargs)
    if kind == "tracking":
        from mixbin.tracking import TrackingTask

        return TrackingTask(**kwargs)
    raise UsageError(f"unknown task {kind!r}; choose one of {', '.join(TASKS)}")


def epochs_to_iterations(task: Task, epochs: float | None, iterations: int | None,
                         default_epochs: float) -> int:
    """Iterations from --iterations, or --epochs (default ``default_epochs``) times the epoch length."""
    if iterations is not None:
        if iterations < 0:
            raise UsageError(f"--iterations must be >= 0, got {iterations}")
        return iterations
    e = default_epochs if epochs is None else epochs
    if e < 0:
        raise UsageError(f"--epochs must be >= 0, got {e}")
    return math.ceil(e * task.iterations_per_epoch())
