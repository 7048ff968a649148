"""ImageFolder classification data in the backbone's input convention (``Backbone.input_config``).

The tracker feeds its patches through ``Backbone.normalize``; classification uses the same convention
(colour order, mean, std) so that classification-trained weights transfer to the tracker unchanged.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from backbones.base import Backbone, InputConfig
from backbones.cli import UsageError

TRAIN_SPLIT = "train"
TEST_SPLITS = ("test", "val")


class ToNetworkInput:
    """uint8 RGB CHW tensor (what ``PILToTensor`` gives) -> the backbone's normalised float CHW input."""

    def __init__(self, config: InputConfig = Backbone.input_config):
        self.config = config

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.config.normalize(self.config.reorder(image, "RGB"))


def train_transform(input_size: int, config: InputConfig = Backbone.input_config) -> transforms.Compose:
    """Random resized crop (scale 0.35-1, small images such as CIFAR's 32x32 are upsampled) and a flip."""
    return transforms.Compose([
        transforms.RandomResizedCrop(input_size, scale=(0.35, 1.0), antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.PILToTensor(),
        ToNetworkInput(config),
    ])


def test_transform(input_size: int, config: InputConfig = Backbone.input_config) -> transforms.Compose:
    """Resize to ``input_size`` square (the images are small and already centred)."""
    return transforms.Compose([
        transforms.Resize((input_size, input_size), antialias=True),
        transforms.PILToTensor(),
        ToNetworkInput(config),
    ])


def split_dirs(root: str | Path) -> tuple[Path, Path]:
    """The train and test (or val) folders of an ImageFolder root, or a UsageError naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"data root not found: {root}")
    test = next((root / s for s in TEST_SPLITS if (root / s).is_dir()), None)
    if not (root / TRAIN_SPLIT).is_dir() or test is None:
        raise UsageError(f"{root}: expected subfolders train/ and test/ (or val/), each with one folder "
                         "of images per class")
    return root / TRAIN_SPLIT, test


def _image_folder(path: Path, transform: transforms.Compose) -> ImageFolder:
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as err:
        raise UsageError(f"{path}: no images in class subfolders ({str(err).splitlines()[0]})") from None


def _subset(dataset: Dataset, indices: list[int]) -> Dataset:
    return dataset if len(indices) == len(dataset) else Subset(dataset, sorted(indices))


def heldout_count(train_images: int, heldout: int) -> int:
    """How many training images to hold out: ``heldout``, but at most a fifth of the split (at least 1)."""
    return max(1, min(heldout, train_images // 5))


def load_splits(root: str | Path, input_size: int, limit: int | None = None, seed: int = 0,
                heldout: int = 256, config: InputConfig = Backbone.input_config
                ) -> tuple[Dataset, Dataset, Dataset, list[str]]:
    """(train, held-out, test) datasets of an ImageFolder root and the class names, as input ``config``.

    ``limit`` keeps a seeded random subset of that many images per split. The held-out images are a
    seeded part of the train split, never trained on, shown without augmentation (the loss probes of the
    iterative and sensitivity baselines); the test split is only for reporting.
    """
    if limit is not None and limit < 2:
        raise UsageError(f"--limit must be at least 2 images per split, got {limit}")
    train_dir, test_dir = split_dirs(root)
    train = _image_folder(train_dir, train_transform(input_size, config))
    plain = _image_folder(train_dir, test_transform(input_size, config))
    test = _image_folder(test_dir, test_transform(input_size, config))
    if train.classes != test.classes:
        raise UsageError(f"{root}: the class folders of {train_dir.name}/ and {test_dir.name}/ differ")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    order = order[:limit] if limit else order
    cut = heldout_count(len(order), heldout)
    test_order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed + 1)).tolist()
    test_order = test_order[:limit] if limit else test_order
    return (_subset(train, order[cut:]), _subset(plain, order[:cut]), _subset(test, test_order),
            list(train.classes))
