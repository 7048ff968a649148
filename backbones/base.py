"""What every backbone shares: its units, its input convention and stride, mask application, the embedding."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from backbones.cli import UsageError
from backbones.unit import STATES, SwitchableConv

MAX_WIDTH = 4.0  # width multipliers above this would allocate gigabytes for no use
MAX_INPUT = 1024  # largest square input the cost model measures (pixels)
COLOR_ORDERS = ("BGR", "RGB")


class BackboneError(UsageError, ValueError):
    """A backbone name, width or input size outside what the backbones support (one line, exit 2 in a CLI)."""


class MaskError(BackboneError):
    """A mask that is malformed or does not fit the backbone it is used with."""


def scaled(channels: int, width: float, divisor: int = 4) -> int:
    """Channels after a width multiplier, rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, round(channels * width / divisor) * divisor)


def check_width(width: float) -> None:
    """BackboneError naming the valid range unless 0 < ``width`` <= MAX_WIDTH."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise BackboneError(f"width must be in (0, {MAX_WIDTH:g}], got {width!r}")


@dataclass(frozen=True)
class InputConfig:
    """A backbone's input convention, as timm's pretrained config carries it: the colour order it expects
    and the per-channel mean and std of raw 0-255 pixels. Every network input goes through ``normalize``.
    """

    color_order: str = "BGR"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (64.0, 64.0, 64.0)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N)CHW raw 0-255 pixels (uint8 or float) in ``color_order`` -> normalised float32, same shape."""
        if pixels.dim() not in (3, 4) or pixels.shape[-3] != 3:
            raise ValueError(f"expected (N, 3, H, W) or (3, H, W) pixels, got shape {tuple(pixels.shape)}")
        mean = torch.tensor(self.mean, dtype=torch.float32, device=pixels.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=pixels.device).view(3, 1, 1)
        return (pixels.float() - mean) / std

    def reorder(self, pixels: torch.Tensor, order: str) -> torch.Tensor:
        """(N)CHW pixels in colour ``order`` ('BGR' or 'RGB') -> in this convention's ``color_order``."""
        if order not in COLOR_ORDERS:
            raise ValueError(f"colour order must be one of {COLOR_ORDERS}, got {order!r}")
        return pixels if order == self.color_order else pixels.flip(-3)


class Backbone(nn.Module):
    """Base class: ``embed(x)`` gives a feature map of stride ``total_stride``; units are the binarizable
    convolutions. ``total_stride``, ``min_input`` and ``input_config`` are declared here, once: the tracker
    and the data pipelines read them instead of keeping copies.
    """

    name: str = ""
    total_stride: int = 8  # input pixels per embedding cell
    min_input: int = 87  # smallest square input whose embedding is non-empty (unpadded convolutions)
    input_config: InputConfig = InputConfig()

    def __init__(self, width: float):
        super().__init__()
        check_width(width)
        self.width = float(width)
        self.out_channels = 0

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N)CHW raw 0-255 pixels in the backbone's colour order -> the normalised input of ``embed``."""
        return self.input_config.normalize(pixels)

    def check_input_size(self, size: int) -> None:
        """BackboneError naming the valid range when a ``size`` x ``size`` input is too small or too large."""
        if isinstance(size, bool) or not isinstance(size, int) or not self.min_input <= size <= MAX_INPUT:
            raise BackboneError(f"input size {size!r} is outside {self.name}'s range "
                                f"[{self.min_input}, {MAX_INPUT}] pixels")

    def units(self) -> dict[str, SwitchableConv]:
        """The binarizable units by module path, in forward order."""
        return {name: m for name, m in self.named_modules() if isinstance(m, SwitchableConv)}

    def set_mask(self, states: Mapping[str, str], source: str = "mask") -> None:
        """Set every unit's state from {unit: 'fp' | 'binary'} naming exactly the units, else MaskError."""
        units = self.units()
        if not isinstance(states, Mapping):
            raise MaskError(f"{source}: 'units' must be an object of unit name -> 'fp' | 'binary'")
        unknown = sorted(set(states) - set(units))
        if unknown:
            raise MaskError(f"{source}: unknown unit(s) {', '.join(map(str, unknown))} for {self.name}; "
                            f"its units are {', '.join(units)}")
        missing = [n for n in units if n not in states]
        if missing:
            raise MaskError(f"{source}: missing unit(s) {', '.join(missing)} for {self.name}")
        for name in units:
            if states[name] not in STATES:
                raise MaskError(f"{source}: unit {name} has state {states[name]!r}; "
                                "valid states are fp, binary")
        for name, unit in units.items():
            unit.set_state(states[name])

    def mask_states(self) -> dict[str, str]:
        """The current state of every unit, in forward order."""
        return {name: unit.state for name, unit in self.units().items()}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class Classifier(nn.Module):
    """A backbone with a global-average-pool + linear head: the image classifier used for pretraining."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.embed(x)
        return self.head(features.mean(dim=(2, 3)))
