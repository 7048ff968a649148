"""eval.sweep and eval.transfer: a sweep of two tiny trackers runs end to end and resumes without training
again; a report of other settings or another code version is refused; bad input is one line, exit 2."""
import json

import pytest
import torch
from conftest import TRACKING, needs_shared

from backbones.base import Classifier
from backbones.checkpoint import save_checkpoint
from backbones.cli import run_cli
from backbones.mask import uniform_mask
from backbones.registry import build_backbone
from eval import sweep, transfer
from tracker.model import build_siamfc

pytestmark = needs_shared
WIDTH = 0.25


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """An untrained seeded FP tracker at a narrow width, two train sequences and one val sequence."""
    folder = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    mask = uniform_mask("resnet", WIDTH, "fp")
    fp = save_checkpoint(folder / "fp.safetensors", build_siamfc(mask), mask, {"iterations": 0})
    (folder / "train.txt").write_text("otb/Deer\notb/Skiing\n")
    (folder / "val.txt").write_text("otb/Crossing\n")
    return {"fp": fp, "train": folder / "train.txt", "val": folder / "val.txt", "folder": folder}


def common(inputs, out, *extra):
    return ["--data", str(TRACKING), "--from", str(inputs["fp"]), "--out", str(out), "--split",
            str(inputs["train"]), "--val-split", str(inputs["val"]), "--iterations", "2", "--batch-size", "2",
            "--max-frames", "4", "--latency-frames", "3", "--threads", "1", *extra]


def sweep_argv(inputs, out, *extra):
    return ["--budgets", "1.0", "0.5", "--masks", "first", "random", *common(inputs, out, *extra)]


def test_a_sweep_of_two_tiny_trackers_runs_end_to_end_and_resumes(inputs, tmp_path, monkeypatch, capsys,
                                                                  one_torch_thread):
    made = []
    real_make = sweep.make

    def counting_make(settings, *args, **kwargs):
        made.append(settings.mask_source)
        if len(made) == 2 and not getattr(counting_make, "resumed", False):
            return 130  # interrupted while fine-tuning the second tracker
        return real_make(settings, *args, **kwargs)

    monkeypatch.setattr(sweep, "make", counting_make)
    out = tmp_path / "report"
    assert run_cli(sweep.main, sweep_argv(inputs, out)) == 130
    ledger = json.loads((out / "sweep.json").read_text())
    assert sorted(ledger["runs"]) == ["b0.5_first_s0", "b1_fp_s0"] and made == ["first", "random"]
    counting_make.resumed = True
    assert run_cli(sweep.main, sweep_argv(inputs, out)) == 0
    assert made == ["first", "random", "random"]  # only the unfinished tracker was made
    assert run_cli(sweep.main, sweep_argv(inputs, out)) == 0
    assert len(made) == 3  # everything finished: nothing is trained or scored again
    table = json.loads((out / "table.json").read_text())
    rows = {r["row"]: r for r in table["rows"]}
    assert set(rows) == {"b1_fp", "b0.5_first", "b0.5_random"}
    for r in rows.values():
        assert 0 <= r["auc"] <= 1 and r["latency_ms"] > 0 and len(r["auc_ci95"]) == 2
    assert rows["b1_fp"]["budget_achieved"] == 1.0 and rows["b0.5_first"]["budget_achieved"] <= 0.5
    assert (out / "front.png").stat().st_size > 0 and "| b0.5_first |" in (out / "table.md").read_text()
    capsys.readouterr()

    assert run_cli(sweep.main, sweep_argv(inputs, out, "--seeds", "1")) == 2
    assert "--seeds [0], not [1]" in one_line(capsys)


def one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_report_of_another_code_version_is_refused_and_force_starts_over(inputs, tmp_path, capsys,
                                                                          one_torch_thread):
    out = tmp_path / "report"
    argv = ["--budgets", "1.0", "--masks", "first", *common(inputs, out)]
    assert run_cli(sweep.main, argv) == 0
    ledger = json.loads((out / "sweep.json").read_text())
    ledger["code_version"] = "0000000"
    (out / "sweep.json").write_text(json.dumps(ledger))
    capsys.readouterr()
    assert run_cli(sweep.main, argv) == 2
    assert "code version 0000000" in one_line(capsys)
    assert run_cli(sweep.main, [*argv, "--force"]) == 0
    assert json.loads((out / "sweep.json").read_text())["code_version"] != "0000000"


def test_sweep_bad_input_is_one_line_with_exit_2(inputs, tmp_path, capsys):
    out = tmp_path / "report"
    base = common(inputs, out)
    assert run_cli(sweep.main, ["--budgets", "0.01", "--masks", "first", *base]) == 2
    assert "[0.0978, 1]" in one_line(capsys)
    assert run_cli(sweep.main, ["--budgets", "0.5", "--masks", "first", "magic", *base]) == 2
    line = one_line(capsys)
    assert "'magic'" in line and "mixbin-tracking, mixbin-cls, random, iterative, sensitivity, first" in line
    overlap = tmp_path / "val.txt"
    overlap.write_text("otb/Deer\n")
    argv = ["--budgets", "0.5", "--masks", "first", *base, "--val-split", str(overlap)]
    assert run_cli(sweep.main, argv) == 2
    assert "shares sequences with the val split" in (line := one_line(capsys)) and "(Deer)" in line
    assert not out.exists()


def test_transfer_bad_input_is_one_line_with_exit_2(inputs, tmp_path, capsys):
    out = tmp_path / "report"
    cls_data = str(TRACKING.parent / "classification" / "cifar10")
    base = ["--cls-data", cls_data, *common(inputs, out)]
    assert run_cli(transfer.main, ["--budget", "0.01", *base]) == 2
    assert "[0.0978, 1]" in one_line(capsys)
    assert run_cli(transfer.main, ["--budget", "min", *base]) == 2
    assert "every mask source gives the same mask" in one_line(capsys)
    assert run_cli(transfer.main, ["--budget", "0.5", *base, "--seeds", "0", "1"]) == 2
    assert "at least 3 different seeds" in one_line(capsys)
    assert run_cli(transfer.main, ["--budget", "0.5", *base, "--cls-from", str(inputs["fp"])]) == 2
    assert "tracker checkpoint, not a classifier" in one_line(capsys)
    classifier = save_checkpoint(tmp_path / "cls.safetensors", Classifier(build_backbone("resnet", WIDTH), 3),
                                 uniform_mask("resnet", WIDTH, "fp"), {})
    other = dict(inputs, fp=classifier)
    assert run_cli(transfer.main, ["--budget", "0.5", "--cls-data", cls_data, *common(other, out)]) == 2
    assert "classifier checkpoint, not a tracker" in one_line(capsys)
    assert not out.exists()


def test_relative_improvement_and_comparisons_on_a_hand_made_case():
    rel, (low, high) = transfer.relative_improvement([0.6, 0.6, 0.6], [0.5, 0.5, 0.5])
    assert rel == pytest.approx(0.2) and low == pytest.approx(0.2) and high == pytest.approx(0.2)
    rows = [{"row": "r", "source": "random", "init": "fp", "per_sequence_auc": {"a": 0.5, "b": 0.4}},
            {"row": "m", "source": "mixbin-tracking", "init": "fp", "per_sequence_auc": {"a": 0.6, "b": 0.5}},
            {"row": "c", "source": "mixbin-cls", "init": "fp", "per_sequence_auc": {"a": 0.5, "b": 0.4}}]
    compared = {(c["row"], c["versus"]): c for c in transfer.comparisons(rows)}
    assert compared[("m", "r")]["verdict"] == "better"
    assert compared[("m", "r")]["relative"] == pytest.approx(0.55 / 0.45 - 1)
    assert compared[("m", "r")]["difference"] == pytest.approx(0.1)
    assert compared[("c", "r")]["verdict"] == "tie" and compared[("c", "m")]["verdict"] == "worse"


def test_transfer_plot_is_a_png_written_atomically(tmp_path):
    rows = [{"row": f"{s}-{i}", "budget": 0.3, "source": s, "init": i, "auc": 0.4 + 0.01 * k,
             "auc_ci95": [0.3, 0.5] if i == "fp" else None}
            for k, (s, i) in enumerate([("random", "fp"), ("mixbin-cls", "fp"), ("random", "cls")])]
    transfer.plot_rows(rows, tmp_path / "transfer.png")
    assert (tmp_path / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["transfer.png"]  # no temporary file left behind
