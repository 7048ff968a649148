"""Backbone registry (timm-style): build a backbone from its name, a width and a mask."""
from __future__ import annotations

from collections.abc import Callable

from backbones.alexnet import AlexNet
from backbones.base import Backbone, Classifier
from backbones.resnet import ResNet

BACKBONES: dict[str, Callable[..., Backbone]] = {"alexnet": AlexNet, "resnet": ResNet}
DEFAULT_BACKBONE = "resnet"


def list_backbones() -> list[str]:
    """Names accepted by ``build_backbone``."""
    return sorted(BACKBONES)


def check_backbone_args(name: str, width: float) -> None:
    """Raise ValueError naming the culprit for an unknown backbone or a width <= 0."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")


def build_backbone(name: str, width: float = 1.0, mask=None, **kwargs) -> Backbone:
    """Build backbone ``name`` at ``width``; ``mask`` is a Mask, a {unit: state} dict, 'fp' or 'binary'."""
    check_backbone_args(name, width)
    backbone = BACKBONES[name](width=width, **kwargs)
    if mask is not None:
        from backbones.mask import mask_states

        backbone.set_mask(mask_states(mask, backbone))
    return backbone


def build_classifier(name: str, num_classes: int, width: float = 1.0, mask=None, **kwargs) -> Classifier:
    """A backbone with a global-pool + linear head, for classification pretraining and MixBin search."""
    return Classifier(build_backbone(name, width, mask, **kwargs), num_classes)
