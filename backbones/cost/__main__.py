"""``python -m backbones.cost``: the per-layer cost table (or JSON) of a backbone with a mask."""
from __future__ import annotations

import json

from backbones.base import MAX_INPUT, BackboneError
from backbones.cli import ArgumentParser, UsageError, run_cli
from backbones.cost import REFERENCE_INPUT, cost_report, format_table
from backbones.mask import build_masked_backbone
from backbones.registry import list_backbones


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m backbones.cost",
        description="Per-layer MACs, OPs (binary layers count MACs/64), parameters and weight bits of a "
                    "backbone with a mask; the budget is always computed at the 255x255 reference input.")
    parser.add_argument("--backbone", help=f"backbone: {', '.join(list_backbones())}; all-FP unless --mask "
                                           "says otherwise")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default 1.0)")
    parser.add_argument("--mask", help="mask JSON file (sets backbone and width), or 'fp' / 'binary'")
    parser.add_argument("--input", type=int, default=REFERENCE_INPUT, metavar="N",
                        help=f"input size of the MACs shown (default {REFERENCE_INPUT}, at most {MAX_INPUT})")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.backbone is None and args.mask in (None, "fp", "binary"):
        raise UsageError("give --backbone NAME or --mask FILE")
    backbone = build_masked_backbone(args.mask or "fp", args.backbone, args.width)
    try:
        backbone.check_input_size(args.input)
    except BackboneError as err:
        raise UsageError(f"--input: {err}") from None
    report = cost_report(backbone, args.input)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
