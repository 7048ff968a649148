"""The SiamFC tracker: ``init(frame, box)`` then ``update(frame) -> box`` on OpenCV BGR frames.

Settings follow siamfc-pytorch (docs/design.md section 5): 3 scales, 17x17 responses upsampled 16x,
cosine window. The scale is estimated between the searched scales (``scale_estimate='parabolic'``: the
vertex of the parabola through the best scale's peak and its neighbours, less the response's measured
bias, damped by ``scale_lr``); ``'argmax'`` is siamfc-pytorch's pick of one scale after a penalty.
Each update also sets ``psr`` (the response's peak-to-sidelobe ratio), ``confidence`` (the PSR as a
calibrated probability, tracker.confidence) and ``lost`` (confidence below ``loss_threshold``).
The defaults come from ``python -m eval.calibrate`` on train sequences held out from training.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from backbones.cli import resolve_device
from backbones.cost import reference_costs
from tracker.boxes import check_init_box
from tracker.checkpoint import load_checkpoint
from tracker.confidence import peak_to_sidelobe, psr_confidence
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
    """Tracking hyper-parameters; the stride is the backbone's own.

    Search, window and ``scale_step`` are siamfc-pytorch's; ``scale_estimate``, ``scale_lr``, ``scale_bias``
    (ln of the scale the response prefers at the true size), ``scale_gate`` (each scale change raised to
    the power ``confidence``), the confidence's ``psr_center`` /
    ``psr_slope`` and ``loss_threshold`` were chosen with ``eval.calibrate`` on held-out train sequences
    (models/README.md). ``scale_penalty`` applies to ``'argmax'`` only.
    """

    scale_num: int = 3
    scale_step: float = 1.0375
    scale_estimate: str = "parabolic"
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    scale_bias: float = -0.0013
    scale_gate: bool = True
    window_influence: float = 0.176
    response_up: int = 16
    psr_center: float = 3.0
    psr_slope: float = 1.3
    loss_threshold: float = 0.46  # a 10% false-alarm rate on the held-out train frames (docs/results.md)
    min_size: float = 2.0

    def __post_init__(self) -> None:
        if self.scale_estimate not in SCALE_ESTIMATES:
            raise ValueError(f"scale_estimate must be one of {SCALE_ESTIMATES}, got {self.scale_estimate!r}")
        if self.scale_num < 3 or self.scale_num % 2 == 0:
            raise ValueError(f"scale_num must be odd and at least 3, got {self.scale_num}")


SCALE_ESTIMATES = ("parabolic", "argmax")


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
        self.psr = float("nan")
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
        half = cfg.scale_num // 2
        self.scale_factors = cfg.scale_step ** np.linspace(-half, half, cfg.scale_num)
        self.z_size = exemplar_size(self.target_size)
        self.x_size = self.z_size * INSTANCE_SIZE / EXEMPLAR_SIZE
        self.avg_color = frame.mean(axis=(0, 1))
        z = crop_and_resize(frame, self.center, self.z_size, EXEMPLAR_SIZE, self.avg_color)
        self.kernel = self.embed(self._input(z))
        self.confidence, self.psr, self.lost = 1.0, float("nan"), False

    def _response_size(self) -> int:
        return (INSTANCE_SIZE - EXEMPLAR_SIZE) // self.stride + 1

    def _input(self, patches: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 patches -> the backbone's normalised input on the tracker's device."""
        backbone = self.model.backbone
        pixels = backbone.input_config.reorder(to_pixels(patches).to(self.device), "BGR")
        return backbone.normalize(pixels).contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def update(self, frame: np.ndarray) -> np.ndarray:
        """Locate the target in the next frame; returns its box and sets ``psr``, ``confidence``, ``lost``."""
        if self.frame_size is None:
            raise RuntimeError("call init(frame, box) before update(frame)")
        cfg = self.cfg
        patches = [crop_and_resize(frame, self.center, self.x_size * f, INSTANCE_SIZE, self.avg_color)
                   for f in self.scale_factors]
        features = self.embed(self._input(patches))
        logits = self.model.head(self.kernel, features).squeeze(1).float().cpu().numpy()
        responses = np.stack([cv2.resize(r, (self.upscale, self.upscale), interpolation=cv2.INTER_CUBIC)
                              for r in logits])
        peaks = responses.max(axis=(1, 2))
        pick = self._argmax_scale if cfg.scale_estimate == "argmax" else self._parabolic_scale
        scale_id, scale = pick(peaks)
        self.logits, self.scale_id = logits, scale_id  # the raw responses (scales x 17 x 17), for diagnostics
        self._score(logits[scale_id])
        if cfg.scale_gate:  # trust a scale change as much as the response: none on a lost target
            scale = scale ** self.confidence
        self.center = self.center + self._displacement(responses[scale_id], scale_id)
        self._rescale(scale)
        return center_to_box(self.center, self.target_size)

    def _argmax_scale(self, peaks: np.ndarray) -> tuple[int, float]:
        """siamfc-pytorch: the best scale after penalising all but the middle one, and the damped change."""
        cfg = self.cfg
        penalised = peaks * cfg.scale_penalty
        penalised[cfg.scale_num // 2] = peaks[cfg.scale_num // 2]
        scale_id = int(np.argmax(penalised))
        return scale_id, float((1 - cfg.scale_lr) + cfg.scale_lr * self.scale_factors[scale_id])

    def _parabolic_scale(self, peaks: np.ndarray) -> tuple[int, float]:
        """The best scale, and the damped change to the scale where the peaks' parabola tops out (between the
        searched ones), less the response's bias ``scale_bias``."""
        cfg = self.cfg
        scale_id = int(np.argmax(peaks))
        log_factors = np.log(self.scale_factors)
        log_scale = log_factors[scale_id] + parabolic_offset(peaks, scale_id) * np.log(cfg.scale_step)
        log_scale = float(np.clip(log_scale, log_factors[0], log_factors[-1])) - cfg.scale_bias
        return scale_id, float(np.exp(cfg.scale_lr * log_scale))

    def _score(self, logits: np.ndarray) -> None:
        """PSR of the chosen scale's raw response, its calibrated confidence and the lost flag."""
        cfg = self.cfg
        self.psr = peak_to_sidelobe(logits)
        self.confidence = float(psr_confidence(self.psr, cfg.psr_center, cfg.psr_slope))
        self.lost = self.confidence < cfg.loss_threshold

    def _displacement(self, response: np.ndarray, scale_id: int) -> np.ndarray:
        """The target's move in image pixels: the windowed response's peak, from the search centre."""
        cfg = self.cfg
        response = response - response.min()
        response /= response.sum() + 1e-16
        response = (1 - cfg.window_influence) * response + cfg.window_influence * self.window
        row, col = np.unravel_index(int(response.argmax()), response.shape)
        disp = np.array([col, row], dtype=np.float64) - (self.upscale - 1) / 2
        pixel = self.x_size * self.scale_factors[scale_id] / INSTANCE_SIZE  # image pixels per search pixel
        return disp * self.stride / cfg.response_up * pixel

    def _rescale(self, scale: float) -> None:
        """Apply a scale change, keeping the target at least ``min_size`` px and the centre near the frame."""
        w, h = self.frame_size
        new_size = np.clip(self.target_size * scale, self.cfg.min_size, [4 * w, 4 * h])
        ratio = float(np.sqrt(np.prod(new_size) / np.prod(self.target_size)))
        self.target_size = new_size
        self.z_size *= ratio
        self.x_size *= ratio
        self.center = np.clip(self.center, [-w / 2, -h / 2], [1.5 * w, 1.5 * h])


def parabolic_offset(peaks: np.ndarray, index: int) -> float:
    """Offset in [-1, 1] steps from ``index`` of the vertex of the parabola through ``peaks`` at index - 1,
    index, index + 1 (an end index uses its one neighbour: the half step toward it); 0 when flat."""
    lo = min(max(index, 1), len(peaks) - 2)
    left, mid, right = (float(v) for v in peaks[lo - 1:lo + 2])
    curvature = left - 2 * mid + right
    if curvature >= 0:  # not a peak between the three: step toward the higher end, if any
        offset = float(np.sign(right - left))
    else:
        offset = 0.5 * (left - right) / curvature
    return float(np.clip(offset + lo - index, -1.0, 1.0))


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
    ``device`` (or 'auto'); binary units run packed on the CPU unless ``kernels='float'``. Without
    ``config``, the defaults updated by the sidecar's ``tracking`` settings (``calibrated_config``)."""
    from tracker.export import is_deploy, load_deploy

    device = resolve_device(device)
    model, meta = (load_deploy if is_deploy(path) else load_checkpoint)(path, device)
    config = config or calibrated_config(meta, path)
    return SiamFCTracker(model, config, device, name=Path(path).stem, kernels=kernels)


def calibrated_config(meta: dict, path: str | Path = "checkpoint") -> TrackerConfig:
    """TrackerConfig defaults updated by a sidecar's ``tracking`` dict: settings calibrated for that model
    (``eval.calibrate --fit`` on held-out train sequences, e.g. its own ``scale_bias``)."""
    settings = meta.get("tracking", {}) if isinstance(meta, dict) else {}
    fields = {f.name: f for f in dataclasses.fields(TrackerConfig)}
    bad = [k for k in settings if k not in fields] if isinstance(settings, dict) else ["(not a dict)"]
    if bad:
        from backbones.checkpoint import CheckpointError

        raise CheckpointError(f"{Path(path).with_suffix('.json')}: unknown tracking setting(s) {', '.join(bad)}; "
                              f"valid: {', '.join(fields)}")
    return TrackerConfig(**settings)
