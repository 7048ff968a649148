"""The SiamFC tracker: ``init(frame, box)`` then ``update(frame) -> box`` on OpenCV BGR frames.

Settings follow siamfc-pytorch (docs/design.md section 5): 3 scales, 17x17 responses upsampled 16x,
cosine window, scale penalty and damping. Each update also sets ``confidence`` (the peak response,
as a probability) and ``lost`` (confidence below ``loss_threshold``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from backbones.cli import resolve_device
from backbones.cost import reference_costs
from tracker.boxes import check_init_box
from tracker.checkpoint import load_checkpoint
from tracker.model import SiamFC
from tracker.ops import (
    EXEMPLAR_SIZE,
    INSTANCE_SIZE,
    box_center,
    center_to_box,
    crop_and_resize,
    exemplar_size,
    to_pixels,
)


@dataclass
class TrackerConfig:
    """Tracking hyper-parameters (siamfc-pytorch's defaults); the stride is the backbone's own."""

    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_up: int = 16
    loss_threshold: float = 0.2
    min_size: float = 2.0


KERNELS = ("packed", "float")


class SiamFCTracker:
    """SiamFC tracking with any masked backbone; boxes are [x, y, w, h] floats, 0-based pixels.

    ``kernels='packed'`` (the default) runs binary units bit-packed on the CPU (backbones.packed);
    ``'float'`` keeps the float-simulated modules (on CUDA packed falls back to float).
    """

    def __init__(self, model: SiamFC, config: TrackerConfig | None = None, device: str | torch.device = "cpu",
                 name: str = "siamfc", kernels: str = "packed"):
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.cfg = config or TrackerConfig()
        self.device = torch.device(device)
        self.name = name
        self.stride = model.backbone.total_stride
        self.embed, self.kernel_path = _embedder(self.model, self.device, kernels)
        costs = reference_costs(model.backbone.name, model.backbone.width)
        states = model.backbone.mask_states()
        self.ops = costs.ops(states)  # one 255x255 search image; a tracked frame costs scale_num of these
        self.budget = costs.budget(states)
        self.confidence = float("nan")
        self.lost = False
        self.frame_size: tuple[int, int] | None = None

    @torch.no_grad()
    def init(self, frame: np.ndarray, box) -> None:
        """Start tracking the target ``box`` = [x, y, w, h] in ``frame`` (HxWx3 uint8 BGR)."""
        h, w = frame.shape[:2]
        box = check_init_box(box, w, h)
        cfg = self.cfg
        self.frame_size = (w, h)
        self.center = box_center(box)
        self.target_size = box[2:].copy()
        self.upscale = cfg.response_up * self._response_size()
        hann = np.outer(np.hanning(self.upscale), np.hanning(self.upscale))
        self.window = hann / hann.sum()
        self.scale_factors = cfg.scale_step ** np.linspace(-(cfg.scale_num // 2), cfg.scale_num // 2, cfg.scale_num)
        self.z_size = exemplar_size(self.target_size)
        self.x_size = self.z_size * INSTANCE_SIZE / EXEMPLAR_SIZE
        self.avg_color = frame.mean(axis=(0, 1))
        z = crop_and_resize(frame, self.center, self.z_size, EXEMPLAR_SIZE, self.avg_color)
        self.kernel = self.embed(self._input(z))
        self.confidence, self.lost = 1.0, False

    def _response_size(self) -> int:
        return (INSTANCE_SIZE - EXEMPLAR_SIZE) // self.stride + 1

    def _input(self, patches: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 patches -> the backbone's normalised input on the tracker's device."""
        backbone = self.model.backbone
        pixels = backbone.input_config.reorder(to_pixels(patches).to(self.device), "BGR")
        return backbone.normalize(pixels).contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def update(self, frame: np.ndarray) -> np.ndarray:
        """Locate the target in the next frame; returns its box and sets ``confidence`` / ``lost``."""
        if self.frame_size is None:
            raise RuntimeError("call init(frame, box) before update(frame)")
        cfg = self.cfg
        patches = [crop_and_resize(frame, self.center, self.x_size * f, INSTANCE_SIZE, self.avg_color)
                   for f in self.scale_factors]
        features = self.embed(self._input(patches))
        logits = self.model.head(self.kernel, features).squeeze(1).float().cpu().numpy()
        self.confidence = float(1 / (1 + np.exp(-logits.max())))
        self.lost = self.confidence < cfg.loss_threshold
        responses = np.stack([cv2.resize(r, (self.upscale, self.upscale), interpolation=cv2.INTER_CUBIC)
                              for r in logits])
        responses[: cfg.scale_num // 2] *= cfg.scale_penalty
        responses[cfg.scale_num // 2 + 1:] *= cfg.scale_penalty
        scale_id = int(np.argmax(responses.max(axis=(1, 2))))
        response = responses[scale_id] - responses[scale_id].min()
        response /= response.sum() + 1e-16
        response = (1 - cfg.window_influence) * response + cfg.window_influence * self.window
        row, col = np.unravel_index(int(response.argmax()), response.shape)
        disp = np.array([col, row], dtype=np.float64) - (self.upscale - 1) / 2
        disp *= self.stride / cfg.response_up * self.x_size * self.scale_factors[scale_id] / INSTANCE_SIZE
        self.center = self.center + disp
        scale = (1 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[scale_id]
        self._rescale(scale)
        return center_to_box(self.center, self.target_size)

    def _rescale(self, scale: float) -> None:
        """Apply a scale change, keeping the target at least ``min_size`` px and the centre near the frame."""
        w, h = self.frame_size
        new_size = np.clip(self.target_size * scale, self.cfg.min_size, [4 * w, 4 * h])
        ratio = float(np.sqrt(np.prod(new_size) / np.prod(self.target_size)))
        self.target_size = new_size
        self.z_size *= ratio
        self.x_size *= ratio
        self.center = np.clip(self.center, [-w / 2, -h / 2], [1.5 * w, 1.5 * h])



def _embedder(model: SiamFC, device: torch.device, kernels: str):
    """The backbone's ``embed`` for ``kernels`` and the kernel path it runs ('float' when not packed)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    from backbones.kernels import keep_heap, resolve_path
    from backbones.packed_embed import packed_embedder

    keep_heap()  # both paths alike: large per-frame activations stay in the heap (no page faults)
    if kernels == "float" or device.type != "cpu":
        return model.backbone.embed, "float"

    path = resolve_path()
    return packed_embedder(model.backbone, path), path


def load_tracker(path: str | Path, device: str | torch.device = "cpu", config: TrackerConfig | None = None,
                 kernels: str = "packed") -> SiamFCTracker:
    """Build a tracker from a tracker checkpoint or a deploy checkpoint (``.safetensors`` + sidecar) on
    ``device`` (or 'auto'); binary units run packed on the CPU unless ``kernels='float'``."""
    from tracker.export import is_deploy, load_deploy

    device = resolve_device(device)
    model, _meta = (load_deploy if is_deploy(path) else load_checkpoint)(path, device)
    return SiamFCTracker(model, config, device, name=Path(path).stem, kernels=kernels)
