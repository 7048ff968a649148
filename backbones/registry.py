"""Backbone registry (timm-style): build a backbone from its name and a width. Masks are applied by
``Backbone.set_mask`` or read from files by ``backbones.mask.build_masked_backbone``.
"""
from __future__ import annotations

from backbones.alexnet import AlexNet
from backbones.base import Backbone, BackboneError, Classifier, check_width
from backbones.resnet import ResNet

BACKBONES: dict[str, type[Backbone]] = {"alexnet": AlexNet, "resnet": ResNet}
DEFAULT_BACKBONE = "resnet"


def list_backbones() -> list[str]:
    """Names accepted by ``build_backbone``."""
    return sorted(BACKBONES)


def check_backbone_args(name: str, width: float) -> None:
    """BackboneError (a UsageError and a ValueError) naming the culprit for an unknown name or a bad width."""
    if not isinstance(name, str) or name not in BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    check_width(width)


def build_backbone(name: str, width: float = 1.0) -> Backbone:
    """Backbone ``name`` at ``width``, every unit FP."""
    check_backbone_args(name, width)
    return BACKBONES[name](width=width)


def build_classifier(name: str, num_classes: int, width: float = 1.0) -> Classifier:
    """A backbone with a global-pool + linear head, for classification pretraining and MixBin search."""
    return Classifier(build_backbone(name, width), num_classes)
