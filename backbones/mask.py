"""Mask files (DESIGN.md section 2): which units of one backbone at one width are FP or binary.

Load, validate, save atomically; ``python -m backbones.mask`` writes an all-FP or all-binary mask.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backbones.base import Backbone
from backbones.cli import UsageError, atomic_write_text, run_cli
from backbones.cost import REFERENCE_INPUT, unit_costs
from backbones.registry import build_backbone, check_backbone_args, list_backbones
from backbones.unit import STATES

FORMAT = "b2nn-mask/1"
BUDGET_TOLERANCE = 1e-3


class MaskError(UsageError):
    """A mask that is malformed or does not fit the backbone it is used with."""


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


def uniform_mask(backbone: str, width: float, state: str) -> Mask:
    """A mask with every unit of ``backbone`` at ``width`` in ``state`` ('fp' or 'binary')."""
    names = build_backbone(backbone, width).units()
    return with_budget(Mask(backbone, width, {n: state for n in names}))


def with_budget(mask: Mask, target: float | None = None) -> Mask:
    """Return ``mask`` with ``budget`` filled in: achieved budget measured at the reference input."""
    achieved = unit_costs(build_backbone(mask.backbone, mask.width)).budget(mask.units)
    budget = {"target": target if target is not None else (mask.budget or {}).get("target"),
              "achieved": round(achieved, 6), "reference_input": REFERENCE_INPUT}
    if budget["target"] is None:
        budget["target"] = budget["achieved"]
    return Mask(mask.backbone, mask.width, dict(mask.units), budget, mask.search)


def validate_states(units: Any, backbone: Backbone, source: str) -> dict[str, str]:
    """Check that ``units`` names exactly the backbone's units, each 'fp' or 'binary'."""
    if not isinstance(units, dict):
        raise MaskError(f"{source}: 'units' must be an object of unit name -> 'fp' | 'binary'")
    expected = list(backbone.units())
    unknown = sorted(set(units) - set(expected))
    if unknown:
        raise MaskError(f"{source}: unknown unit(s) {', '.join(unknown)} for {backbone.name}; "
                        f"its units are {', '.join(expected)}")
    missing = [n for n in expected if n not in units]
    if missing:
        raise MaskError(f"{source}: missing unit(s) {', '.join(missing)} for {backbone.name}")
    bad = {n: s for n, s in units.items() if s not in STATES}
    if bad:
        name, state = next(iter(bad.items()))
        raise MaskError(f"{source}: unit {name} has state {state!r}; valid states are fp, binary")
    return {n: units[n] for n in expected}


def parse_mask(data: Any, source: str) -> Mask:
    """Validate a decoded mask JSON object against its backbone; recompute and check the budget."""
    if not isinstance(data, dict):
        raise MaskError(f"{source}: a mask must be a JSON object")
    if data.get("format") != FORMAT:
        raise MaskError(f"{source}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    name, width = data.get("backbone"), data.get("width", 1.0)
    if not isinstance(width, (int, float)) or isinstance(width, bool):
        raise MaskError(f"{source}: 'width' must be a number, got {width!r}")
    try:
        check_backbone_args(name, float(width))
    except ValueError as err:
        raise MaskError(f"{source}: {err}") from None
    backbone = build_backbone(name, float(width))
    units = validate_states(data.get("units"), backbone, source)
    mask = Mask(name, float(width), units, data.get("budget"), data.get("search"))
    checked = with_budget(mask)
    if isinstance(mask.budget, dict) and "achieved" in mask.budget:
        stated = mask.budget["achieved"]
        if not isinstance(stated, (int, float)) or abs(stated - checked.budget["achieved"]) > BUDGET_TOLERANCE:
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
        raise MaskError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    return parse_mask(data, str(path))


def save_mask(mask: Mask, path: str | Path) -> Mask:
    """Validate ``mask``, fill in its achieved budget and write it atomically as UTF-8 JSON."""
    backbone = build_backbone(mask.backbone, mask.width)
    validate_states(mask.units, backbone, str(path))
    mask = with_budget(mask)
    atomic_write_text(path, json.dumps(mask.to_json(), indent=2) + "\n")
    return mask


def resolve_mask(spec: str | Mask, backbone: str | None, width: float | None) -> Mask:
    """Turn 'fp', 'binary', a Mask or a mask path into a Mask that fits ``backbone`` at ``width``.

    ``backbone`` / ``width`` of None mean "whatever the mask file says" (all-FP/binary need a backbone).
    """
    if isinstance(spec, Mask):
        mask = spec
    elif spec in STATES:
        if backbone is None:
            raise MaskError(f"mask {spec!r} needs a backbone; choose one of {', '.join(list_backbones())}")
        w = 1.0 if width is None else width
        try:
            check_backbone_args(backbone, w)
        except ValueError as err:
            raise MaskError(str(err)) from None
        return uniform_mask(backbone, w, spec)
    else:
        mask = load_mask(spec)
    if backbone is not None and mask.backbone != backbone:
        raise MaskError(f"mask {spec} is for backbone {mask.backbone!r}, not {backbone!r}")
    if width is not None and not math.isclose(mask.width, width, rel_tol=1e-9):
        raise MaskError(f"mask {spec} is for width {mask.width:g}, not {width:g}")
    return mask


def build_masked_backbone(spec: str | Mask, backbone: str | None = None, width: float | None = None,
                          **kwargs) -> Backbone:
    """Build the backbone a mask describes, with the mask applied."""
    if backbone is not None:
        try:
            check_backbone_args(backbone, 1.0 if width is None else width)
        except ValueError as err:
            raise MaskError(str(err)) from None
    mask = resolve_mask(spec, backbone, width)
    return build_backbone(mask.backbone, mask.width, mask.units, **kwargs)


def mask_states(mask: Any, backbone: Backbone) -> dict[str, str]:
    """The {unit: state} mapping of a Mask, a dict, or 'fp' / 'binary', for ``backbone``."""
    if isinstance(mask, str) and mask in STATES:
        return {n: mask for n in backbone.units()}
    if isinstance(mask, Mask):
        if mask.backbone != backbone.name or not math.isclose(mask.width, backbone.width, rel_tol=1e-9):
            raise MaskError(f"mask is for {mask.backbone} width {mask.width:g}, not "
                            f"{backbone.name} width {backbone.width:g}")
        return validate_states(mask.units, backbone, "mask")
    return validate_states(mask, backbone, "mask")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backbones.mask",
                                     description="Write an all-FP or all-binary mask file for a backbone.")
    parser.add_argument("--backbone", required=True, help=f"one of {', '.join(list_backbones())}")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    parser.add_argument("--all", required=True, choices=STATES, help="state of every unit")
    parser.add_argument("--out", required=True, help="mask JSON file to write")
    args = parser.parse_args(argv)
    mask = resolve_mask(args.all, args.backbone, args.width)
    mask.search = {"method": "uniform", "command": f"python -m backbones.mask --backbone {args.backbone} "
                   f"--width {args.width:g} --all {args.all}"}
    saved = save_mask(mask, args.out)
    print(f"wrote {args.out}: {len(saved.units)} units {args.all}, budget {saved.budget['achieved']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
