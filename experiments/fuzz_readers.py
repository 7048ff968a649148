"""Full seeded mutation fuzz of the sequence readers.

    python experiments/fuzz_readers.py --trees 5000 --seed S


Prints a summary by mutation and the first failing case (rerun it alone with --tree N); exits 1 on any
failure. The cases are those of tests/test_sequence_fuzz.py (tests/sequence_fuzz.py builds them).
"""
from __future__ import annotations

import collections
import importlib
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from backbones.cli import ArgumentParser, UsageError, add_seed_arg, nonnegative_int, positive_int, run_cli

TESTS = Path(__file__).resolve().parents[1] / "tests"


def _fuzz() -> ModuleType:
    """tests/sequence_fuzz.py, which builds, mutates and checks the cases."""
    sys.path.insert(0, str(TESTS))
    return importlib.import_module("sequence_fuzz")


def parse_args(argv: list[str] | None = None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", type=positive_int, default=5000, help="trees to build and load (default 5000)")
    p.add_argument("--tree", type=nonnegative_int, default=None, metavar="N",
                   help="run only tree N of the seed and print its outcome")
    add_seed_arg(p)
    return p.parse_args(argv)


def _summary(counts: dict[str, collections.Counter]) -> str:
    rows = [f"{'mutation':<22} {'ok':>6} {'error':>6} {'FAIL':>6}"]
    for mutation in sorted(counts):
        c = counts[mutation]
        rows.append(f"{mutation:<22} {c['ok']:>6} {c['error']:>6} {c['FAIL']:>6}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fuzz = _fuzz()
    if not fuzz.DATA.is_dir():
        raise UsageError(f"real tracking data not found: {fuzz.DATA}")
    indices = [args.tree] if args.tree is not None else range(args.trees)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    first_fail = None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_readers_") as work:
        for i in indices:
            outcome = fuzz.run_case(Path(work) / f"t{i}", args.seed, i)
            counts[outcome.mutation][outcome.status] += 1
            if args.tree is not None:
                print(outcome.status, outcome.detail)
            if outcome.status == "FAIL" and first_fail is None:
                first_fail = outcome.detail
    total = collections.Counter()
    for c in counts.values():
        total.update(c)
    print(_summary(counts))
    print(f"seed {args.seed}: {sum(total.values())} trees in {time.perf_counter() - start:.1f} s: "
          f"{total['ok']} loaded, {total['error']} clean SequenceError, {total['FAIL']} failed")
    if first_fail:
        print(f"first failure: {first_fail}")
    return 1 if first_fail else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
