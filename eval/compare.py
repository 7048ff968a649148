"""``python -m eval.compare REPORT A B``: the paired difference A - B of two trackers of one benchmark report
(or, with ``--b-report``, B from another report: a baseline scored earlier on the same data).

For each metric (AUC, precision@20px, AO) it prints both means, the mean per-sequence difference over
the sequences both trackers were scored on, and its 95% bootstrap interval (``eval.bootstrap``); the
verdict is "tie" when the interval contains 0, else which tracker is better.
"""
from __future__ import annotations

import argparse

from backbones.cli import ArgumentParser, UsageError, add_seed_arg, positive_int, run_cli
from eval.bootstrap import METRICS, RESAMPLES, paired_difference
from eval.report import Report


def compare(summary: dict, a: str, b: str, metrics: tuple[str, ...] = METRICS, resamples: int = RESAMPLES,
            seed: int = 0) -> dict:
    """Per metric: means of ``a`` and ``b``, mean difference ``a - b``, its interval, and the verdict."""
    seqs_a, seqs_b = summary["trackers"][a]["sequences"], summary["trackers"][b]["sequences"]
    shared = [s for s in seqs_a if s in seqs_b]
    if not shared:
        raise UsageError(f"trackers {a!r} and {b!r} share no scored sequence")
    out: dict = {"sequences": len(shared), "resamples": resamples, "seed": seed, "metrics": {}}
    for metric in metrics:
        xa, xb = [seqs_a[s][metric] for s in shared], [seqs_b[s][metric] for s in shared]
        diff, (low, high) = paired_difference(xa, xb, resamples, seed)
        verdict = "tie" if low <= 0 <= high else (f"{a} better" if low > 0 else f"{b} better")
        out["metrics"][metric] = {a: sum(xa) / len(xa), b: sum(xb) / len(xb), "difference": diff,
                                  "ci95": [low, high], "verdict": verdict}
    return out


def format_comparison(result: dict, a: str, b: str) -> str:
    """The comparison as a small table."""
    title = (f"{a} - {b} over {result['sequences']} shared sequences (95% bootstrap interval, "
             f"{result['resamples']} resamples, seed {result['seed']})")
    lines = [title,
             f"{'metric':<10} {a:>12} {b:>12} {'difference':>11} {'95% interval':>20}  verdict"]
    for metric, r in result["metrics"].items():
        low, high = r["ci95"]
        lines.append(f"{metric:<10} {r[a]:12.3f} {r[b]:12.3f} {r['difference']:+11.3f} "
                     f"{f'[{low:+.3f}, {high:+.3f}]':>20}  {r['verdict']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m eval.compare``."""
    p = ArgumentParser(prog="python -m eval.compare", description=(
        "Paired difference A - B of two trackers of one eval.benchmark report, per metric, with its 95% "
        "bootstrap interval over the sequences both were scored on; 'tie' when the interval contains 0."))
    p.add_argument("report", metavar="REPORT", help="report folder of eval.benchmark (or its summary.json)")
    p.add_argument("a", metavar="A", help="tracker name in the report")
    p.add_argument("b", metavar="B", help="another tracker name in the report (or in --b-report)")
    p.add_argument("--b-report", metavar="REPORT2", help=(
        "read B from this other report (e.g. a baseline scored earlier on the same data); the pairs are "
        "the sequences both reports scored"))
    p.add_argument("--metric", choices=[*METRICS, "all"], default="all",
                   help="metric to compare (default: all)")
    p.add_argument("--resamples", type=positive_int, default=RESAMPLES, metavar="N",
                   help=f"bootstrap resamples (default {RESAMPLES})")
    add_seed_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Load the report, check the tracker names and print the comparison."""
    args = build_parser().parse_args(argv)
    report = Report(args.report)
    if args.b_report is None:
        report.check_trackers([args.a, args.b])
        if args.a == args.b:
            raise UsageError(f"compare two different trackers, got {args.a!r} twice")
        summary, a, b = report.summary, args.a, args.b
    else:
        summary, a, b = two_reports(report, Report(args.b_report), args.a, args.b)
    metrics = METRICS if args.metric == "all" else (args.metric,)
    result = compare(summary, a, b, metrics, args.resamples, args.seed)
    print(format_comparison(result, a, b))
    return 0


def two_reports(report_a: Report, report_b: Report, a: str, b: str) -> tuple[dict, str, str]:
    """One summary holding A of ``report_a`` and B of ``report_b``; B is renamed 'B (REPORT2)' when the
    names are the same (the same tracker name scored twice)."""
    report_a.check_trackers([a])
    report_b.check_trackers([b])
    label_b = b if b != a else f"{b} ({report_b.dir.name})"
    trackers = {a: report_a.summary["trackers"][a], label_b: report_b.summary["trackers"][b]}
    return {"trackers": trackers}, a, label_b


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
