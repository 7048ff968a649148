"""eval.bootstrap on hand-made cases whose bootstrap distribution is known, and eval.compare's verdicts."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from backbones.cli import run_cli
from eval.bootstrap import add_intervals, bootstrap_ci, paired_difference


def exact_percentiles(values: list[float]) -> tuple[float, float]:
    """2.5th / 97.5th percentile of the exact bootstrap distribution of the mean (all n^n resamples)."""
    means = np.sort([np.mean(c) for c in itertools.product(values, repeat=len(values))])
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_interval_matches_the_exact_bootstrap_distribution() -> None:
    values = [0.1, 0.4, 0.5, 0.9, 0.3]
    low, high = bootstrap_ci(values)
    want_low, want_high = exact_percentiles(values)  # 3,125 equally likely resamples
    step = 0.1 / len(values)  # the resampled means lie on a grid of this step: allow one step
    assert abs(low - want_low) <= step + 1e-9 and abs(high - want_high) <= step + 1e-9
    assert low < np.mean(values) < high


def test_interval_on_degenerate_and_two_point_cases() -> None:
    assert bootstrap_ci([0.42] * 7) == (pytest.approx(0.42), pytest.approx(0.42))
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)  # means 0, .5, 1 with chances 1/4, 1/2, 1/4
    assert bootstrap_ci([]) is None


def test_interval_agrees_with_the_normal_approximation_on_many_sequences() -> None:
    values = np.random.default_rng(3).uniform(0, 1, 400)
    low, high = bootstrap_ci(values)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.15 * half)


def test_seeded_and_paired() -> None:
    values = [0.213, 0.517, 0.608, 0.944, 0.371]  # many distinct resampled means: seeds differ
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)
    b = np.array([0.3, 0.5, 0.7, 0.2])
    assert paired_difference(b + 0.1, b) == (pytest.approx(0.1), (pytest.approx(0.1), pytest.approx(0.1)))
    diff, (low, high) = paired_difference([0.5, 0.6, 0.4], [0.6, 0.4, 0.5])
    assert diff == pytest.approx(0.0) and low < 0 < high


def _summary(per_seq: dict[str, list[float]]) -> dict:
    trackers = {name: {"mean": {k: float(np.mean(v)) for k in ("auc", "precision", "ao")},
                       "sequences": {f"s{i}": {"auc": x, "precision": x, "ao": x} for i, x in enumerate(v)}}
                for name, v in per_seq.items()}
    return {"sequences": [f"s{i}" for i in range(4)], "trackers": trackers}


def test_add_intervals_keeps_floats_and_adds_lists() -> None:
    summary = _summary({"a": [0.2, 0.4, 0.6, 0.8]})
    add_intervals(summary)
    mean = summary["trackers"]["a"]["mean"]
    assert isinstance(mean["auc"], float) and len(mean["auc_ci95"]) == 2
    assert mean["auc_ci95"][0] < mean["auc"] < mean["auc_ci95"][1]
    assert mean["precision_ci95"] == mean["ao_ci95"] == mean["auc_ci95"]  # the same resamples for each metric


def test_compare_cli_says_tie_or_better(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from eval.compare import main

    report = tmp_path / "report"
    report.mkdir()
    summary = _summary({"good": [0.6, 0.7, 0.8, 0.65], "bad": [0.3, 0.4, 0.5, 0.35],
                        "same": [0.61, 0.69, 0.81, 0.64]})
    (report / "summary.json").write_text(json.dumps(summary))
    assert run_cli(main, [str(report), "good", "bad", "--metric", "auc"]) == 0
    out = capsys.readouterr().out
    assert "+0.300" in out and "good better" in out and "tie" not in out
    assert run_cli(main, [str(report), "good", "same"]) == 0
    assert capsys.readouterr().out.count("tie") == 3
    assert run_cli(main, [str(report), "good", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and "good, bad, same" in err[0]
    assert run_cli(main, [str(tmp_path), "good", "bad"]) == 2
    assert "no summary.json" in capsys.readouterr().err


def test_compare_b_from_another_report_pairs_by_sequence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from eval.compare import main

    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    old.mkdir()
    (new / "summary.json").write_text(json.dumps(_summary({"fp": [0.6, 0.7, 0.8, 0.65]})))
    (old / "summary.json").write_text(json.dumps(_summary({"fp": [0.3, 0.4, 0.5, 0.35]})))
    assert run_cli(main, [str(new), "fp", "fp", "--b-report", str(old), "--metric", "auc"]) == 0
    out = capsys.readouterr().out
    assert "fp - fp (old)" in out and "+0.300" in out and "fp better" in out
    assert run_cli(main, [str(new), "fp", "nope", "--b-report", str(old)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and str(old) in err[0]
