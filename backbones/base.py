"""What every backbone shares: its units, mask application, and the embedding interface."""
from __future__ import annotations

import torch
from torch import nn

from backbones.unit import SwitchableConv


def scaled(channels: int, width: float, divisor: int = 4) -> int:
    """Channels after a width multiplier, rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, round(channels * width / divisor) * divisor)


class Backbone(nn.Module):
    """Base class: ``embed(x)`` gives a stride-8 feature map; units are the binarizable convolutions."""

    name: str = ""
    total_stride: int = 8

    def __init__(self, width: float):
        super().__init__()
        self.width = float(width)
        self.out_channels = 0

    def units(self) -> dict[str, SwitchableConv]:
        """The binarizable units by module path, in forward order."""
        return {name: m for name, m in self.named_modules() if isinstance(m, SwitchableConv)}

    def set_mask(self, states: dict[str, str]) -> None:
        """Set every unit's state from a {unit name: 'fp' | 'binary'} mapping naming exactly the units."""
        units = self.units()
        unknown = sorted(set(states) - set(units))
        missing = sorted(set(units) - set(states))
        if unknown or missing:
            raise ValueError(f"mask does not fit {self.name}: unknown units {unknown}, missing units {missing}")
        for name, unit in units.items():
            unit.set_state(states[name])

    def mask_states(self) -> dict[str, str]:
        """The current state of every unit."""
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
