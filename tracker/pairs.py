"""Training pairs for SiamFC: two frames of one sequence, at most 100 apart, both with a valid target.

Each pair is a pure function of (seed, global pair index): the sampler has no hidden state, so a resumed
run that restarts at iteration i draws exactly the pairs an uninterrupted run would.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from backbones.cli import UsageError
from tracker.ops import EXEMPLAR_SIZE, INSTANCE_SIZE, box_center, crop_and_resize, exemplar_size
from tracker.sequences import Sequence, SequenceError, read_frame

MAX_GAP = 100
STRETCH = 0.05
# siamfc-pytorch: CenterCrop(255 - 8) then RandomCrop(255 - 2 * 8): the crop centre moves by up to 4 px.
SEARCH_SIZE = INSTANCE_SIZE - 2 * 8
SHIFT = 4


class FrameError(UsageError):
    """A training frame that cannot be read (missing, empty, corrupt): one line, even from a loader worker."""

    def __init__(self, message: str) -> None:
        # DataLoader re-raises a worker's error as FrameError("Caught ... Original Traceback ...: <message>"):
        # keep only the original message, the last line.
        lines = message.strip().splitlines()
        super().__init__(lines[-1].split("FrameError: ", 1)[-1] if lines else message)


class PairDataset(Dataset):
    """Map-style dataset: index -> (exemplar 127x127, search 239x239) uint8 BGR patches as tensors."""

    def __init__(self, sequences: list[Sequence], seed: int = 0, max_gap: int = MAX_GAP,
                 color_jitter: float = 0.0, flip: bool = False, gray: float = 0.0):
        self.sequences = [s for s in sequences if int(s.valid.sum()) >= 2]
        if not self.sequences:
            raise UsageError(f"no training pair: none of the {len(sequences)} sequence(s) has two frames "
                             "with a valid target box")
        self.valid_frames = [np.flatnonzero(s.valid) for s in self.sequences]
        # Sequences are drawn in proportion to their valid frames, so every annotated frame weighs the same.
        # (Our choice: siamfc-pytorch draws one pair per sequence per epoch, each sequence equally often.)
        counts = np.array([len(v) for v in self.valid_frames], dtype=np.float64)
        self.weights = counts / counts.sum()
        self.seed = seed
        self.max_gap = max_gap
        self.color_jitter = color_jitter
        self.flip = flip
        self.gray = gray

    def __len__(self) -> int:
        return 2**62

    def sample_frames(self, rng: np.random.Generator) -> tuple[Sequence, int, int]:
        """A sequence and two valid frame indices at most ``max_gap`` apart."""
        k = rng.choice(len(self.sequences), p=self.weights)
        valid = self.valid_frames[k]
        i = int(rng.choice(valid))
        near = valid[np.abs(valid - i) <= self.max_gap]
        near = near[near != i] if len(near) > 1 else near
        return self.sequences[k], i, int(rng.choice(near))

    def _patch(self, seq: Sequence, frame: int, out_size: int, rng: np.random.Generator,
               shift: np.ndarray) -> np.ndarray:
        try:
            image = read_frame(seq.frames[frame])
        except SequenceError as err:
            raise FrameError(f"cannot read training frame: {err}") from None
        box = seq.boxes[frame]
        stretch = 1.0 + rng.uniform(-STRETCH, STRETCH)
        # Region of the 255 crop that the final patch covers, shrunk or grown by the random stretch.
        size = exemplar_size(box[2:]) * INSTANCE_SIZE / EXEMPLAR_SIZE * out_size / INSTANCE_SIZE / stretch
        pixel = size / out_size
        center = box_center(box) + shift * pixel
        interp = int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST]))
        patch = crop_and_resize(image, center, size, out_size, image.mean(axis=(0, 1)), interp)
        if self.color_jitter > 0:
            gain = 1.0 + rng.uniform(-self.color_jitter, self.color_jitter, size=3)
            patch = np.clip(patch * gain, 0, 255).astype(np.uint8)
        return patch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        seq, i, j = self.sample_frames(rng)
        z_shift, x_shift = rng.integers(-SHIFT, SHIFT + 1, size=(2, 2))
        z = self._patch(seq, i, EXEMPLAR_SIZE, rng, z_shift)
        x = self._patch(seq, j, SEARCH_SIZE, rng, x_shift)
        z, x = self._pair_augment(z, x, rng)
        return torch.from_numpy(z), torch.from_numpy(x)

    def _pair_augment(self, z: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The optional augmentations that treat both patches alike: a left-right mirror (probability 0.5
        with ``flip``) and grayscale (probability ``gray``). Their draws come last and only when enabled,
        so the crops, and every pair of a run without them, stay as they were."""
        if self.flip and rng.random() < 0.5:
            z, x = np.ascontiguousarray(z[:, ::-1]), np.ascontiguousarray(x[:, ::-1])
        if self.gray > 0 and rng.random() < self.gray:
            z, x = (cv2.cvtColor(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for p in (z, x))
        return z, x


class OffsetSampler(torch.utils.data.Sampler[int]):
    """Global pair indices for one process: iteration it, slot b -> (it * world + rank) * batch + b."""

    def __init__(self, start_iteration: int, iterations: int, batch_size: int, rank: int = 0, world: int = 1):
        self.start, self.stop = start_iteration, iterations
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __iter__(self):
        for it in range(self.start, self.stop):
            base = (it * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch_size
