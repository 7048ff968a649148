"""``python -m backbones.mask``: write an all-FP or all-binary mask file for a backbone."""
from __future__ import annotations

from backbones.cli import ArgumentParser, check_output_file, run_cli
from backbones.mask import resolve_mask, save_mask
from backbones.registry import list_backbones
from backbones.unit import STATES


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m backbones.mask",
                            description="Write an all-FP or all-binary mask file for a backbone.")
    parser.add_argument("--backbone", required=True, help=f"one of {', '.join(list_backbones())}")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    parser.add_argument("--all", required=True, choices=STATES, help="state of every unit")
    parser.add_argument("--out", required=True, help="mask JSON file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_output_file(args.out)
    mask = resolve_mask(args.all, args.backbone, args.width)
    mask.search = {"method": "uniform", "command": f"python -m backbones.mask --backbone {args.backbone} "
                   f"--width {args.width:g} --all {args.all}"}
    saved = save_mask(mask, args.out)
    print(f"wrote {args.out}: {len(saved.units)} units {args.all}, budget {saved.budget['achieved']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
