"""Mask files (docs/design.md section 2): which units of one backbone at one width are FP or binary.

Load, validate, save atomically; ``build_masked_backbone`` is the one entry that turns a mask (a file,
a ``Mask``, or 'fp' / 'binary') into a backbone. ``python -m backbones.mask`` (``__main__.py``) writes an
all-FP or all-binary mask.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backbones.base import Backbone, BackboneError, MaskError
from backbones.cli import atomic_write_text
from backbones.cost import REFERENCE_INPUT, reference_costs
from backbones.registry import build_backbone, check_backbone_args, list_backbones
from backbones.unit import STATES

__all__ = ["FORMAT", "Mask", "MaskError", "build_masked_backbone", "load_mask", "parse_mask", "resolve_mask",
           "save_mask", "uniform_mask", "with_budget"]

FORMAT = "b2nn-mask/1"
BUDGET_TOLERANCE = 1e-3


@dataclass
class Mask:
    """A mask: backbone name, width, a state per unit, and optional budget and search provenance."""

    backbone: str
    width: float
    units: dict[str, str]
    budget: dict[str, Any] | None = None
    search: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "backbone": self.backbone, "width": self.width,
                                "units": dict(self.units)}
        if self.budget is not None:
            data["budget"] = self.budget
        if self.search is not None:
            data["search"] = self.search
        return data


def _check_backbone(name: Any, width: Any, source: str | None = None) -> None:
    """``check_backbone_args`` as a MaskError, prefixed with ``source`` when given."""
    try:
        check_backbone_args(name, width)
    except BackboneError as err:
        raise MaskError(f"{source}: {err}" if source else str(err)) from None


def uniform_mask(backbone: str, width: float, state: str) -> Mask:
    """A mask with every unit of ``backbone`` at ``width`` in ``state`` ('fp' or 'binary')."""
    _check_backbone(backbone, width)
    names = build_backbone(backbone, width).units()
    return with_budget(Mask(backbone, width, {n: state for n in names}))


def with_budget(mask: Mask, target: float | None = None) -> Mask:
    """Return ``mask`` with ``budget`` filled in: achieved budget measured at the reference input."""
    achieved = reference_costs(mask.backbone, mask.width).budget(mask.units)
    if target is None and isinstance(mask.budget, dict):
        target = mask.budget.get("target")
    budget = {"target": target, "achieved": round(achieved, 6), "reference_input": REFERENCE_INPUT}
    if budget["target"] is None:
        budget["target"] = budget["achieved"]
    return Mask(mask.backbone, mask.width, dict(mask.units), budget, mask.search)


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


def _check_sections(data: dict[str, Any], source: str) -> None:
    """Check the optional 'budget' (an object; 'target', 'achieved' in (0, 1]) and 'search' (an object)."""
    budget = data.get("budget")
    if budget is not None and not isinstance(budget, dict):
        raise MaskError(f"{source}: 'budget' must be an object such as {{\"target\": 0.3}}, "
                        f"got {json.dumps(budget)[:40]}")
    for key in ("target", "achieved"):
        value = (budget or {}).get(key)
        if value is not None and not _is_fraction(value):
            raise MaskError(f"{source}: budget.{key} must be a number in (0, 1], "
                            f"got {json.dumps(value)[:40]}")
    if data.get("search") is not None and not isinstance(data["search"], dict):
        raise MaskError(f"{source}: 'search' must be an object (the mask's provenance)")


def parse_mask(data: Any, source: str) -> Mask:
    """Validate a decoded mask JSON object against its backbone; recompute and check the budget."""
    if not isinstance(data, dict):
        raise MaskError(f"{source}: a mask must be a JSON object")
    if data.get("format") != FORMAT:
        raise MaskError(f"{source}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    name, width = data.get("backbone"), data.get("width", 1.0)
    if not isinstance(width, (int, float)) or isinstance(width, bool):
        raise MaskError(f"{source}: 'width' must be a number, got {width!r}")
    _check_backbone(name, width, source)
    _check_sections(data, source)
    backbone = build_backbone(name, float(width))
    backbone.set_mask(data.get("units"), source)
    mask = Mask(name, float(width), backbone.mask_states(), data.get("budget"), data.get("search"))
    checked = with_budget(mask)
    stated = (data.get("budget") or {}).get("achieved")
    if stated is not None and abs(stated - checked.budget["achieved"]) > BUDGET_TOLERANCE:
        raise MaskError(f"{source}: budget.achieved {stated} disagrees with the measured "
                        f"{checked.budget['achieved']:.4f}")
    return checked


def load_mask(path: str | Path) -> Mask:
    """Read and validate a mask file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MaskError(f"mask file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MaskError(f"cannot read mask file {path}: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MaskError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: "
                        f"{err.msg}") from None
    return parse_mask(data, str(path))


def save_mask(mask: Mask, path: str | Path) -> Mask:
    """Validate ``mask``, fill in its achieved budget and write it atomically as UTF-8 JSON."""
    _check_backbone(mask.backbone, mask.width, str(path))
    build_backbone(mask.backbone, mask.width).set_mask(mask.units, str(path))
    mask = with_budget(mask)
    atomic_write_text(path, json.dumps(mask.to_json(), indent=2) + "\n")
    return mask


def resolve_mask(spec: str | Path | Mask, backbone: str | None, width: float | None) -> Mask:
    """Turn 'fp', 'binary', a Mask or a mask path into a Mask that fits ``backbone`` at ``width``.

    ``backbone`` / ``width`` of None mean "whatever the mask file says" (all-FP/binary need a backbone).
    """
    if isinstance(spec, Mask):
        mask = spec
    elif spec in STATES:
        if backbone is None:
            raise MaskError(f"mask {spec!r} needs a backbone; choose one of {', '.join(list_backbones())}")
        return uniform_mask(backbone, 1.0 if width is None else width, spec)
    else:
        mask = load_mask(spec)
    if backbone is not None and mask.backbone != backbone:
        raise MaskError(f"mask {spec} is for backbone {mask.backbone!r}, not {backbone!r}")
    if width is not None and not math.isclose(mask.width, width, rel_tol=1e-9):
        raise MaskError(f"mask {spec} is for width {mask.width:g}, not {width:g}")
    return mask


def build_masked_backbone(spec: str | Path | Mask, backbone: str | None = None,
                          width: float | None = None) -> Backbone:
    """Build the backbone a mask describes, with the mask applied (``resolve_mask`` for the forms)."""
    if backbone is not None:
        _check_backbone(backbone, 1.0 if width is None else width)
    mask = resolve_mask(spec, backbone, width)
    net = build_backbone(mask.backbone, mask.width)
    net.set_mask(mask.units)
    return net
