"""mixbin.make: a budget to a tracker that eval.benchmark runs, resumed after an interruption to the same
weights, other settings on the same run refused, and bad input as one line with exit 2."""
import json
from dataclasses import replace

import pytest
import torch
from conftest import TRACKING, needs_shared
from safetensors.torch import load_file

from backbones.base import Classifier
from backbones.checkpoint import read_checkpoint, save_checkpoint
from backbones.cli import UsageError, run_cli
from backbones.mask import uniform_mask
from backbones.registry import build_backbone
from mixbin import make as make_module
from mixbin.make import MakeSettings, main, make
from tracker.model import build_siamfc

pytestmark = needs_shared
WIDTH = 0.25
TRAIN = ["otb/Deer", "otb/Skiing"]  # two short train sequences: one becomes the probe set


def write_split(path, names):
    path.write_text("\n".join(names) + "\n")
    return path


@pytest.fixture(scope="module")
def fp_tracker(tmp_path_factory):
    """An (untrained, seeded) FP tracker checkpoint at a narrow width: what --from points at."""
    torch.manual_seed(0)
    mask = uniform_mask("resnet", WIDTH, "fp")
    path = tmp_path_factory.mktemp("fp") / "fp.safetensors"
    return save_checkpoint(path, build_siamfc(mask), mask, {"iterations": 0})


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "train.txt", TRAIN)


def settings(out, fp_tracker, split, **changes):
    base = MakeSettings(budget=0.5, data=str(TRACKING), out=str(out), from_ckpt=str(fp_tracker),
                        mask_source="first", split=str(split), backbone="resnet", width=WIDTH, iterations=3,
                        search_iterations=2, batch_size=2, seed=3, device="cpu", threads=1, workers=0)
    return replace(base, **changes)


def test_mixbin_tracking_run_gives_a_tracker_the_benchmark_runs(tmp_path, fp_tracker, split, capsys,
                                                                 one_torch_thread):
    from eval.benchmark import main as benchmark

    run = tmp_path / "run"
    assert make(settings(run, fp_tracker, split, mask_source="mixbin-tracking", iterations=2)) == 0
    mask = json.loads((run / "mask.json").read_text())
    assert mask["search"]["method"] == "mixbin" and "gate_agreement" in mask["search"]
    assert mask["search"]["probe_sequences"] and set(mask["search"]["probe_sequences"]) <= {"Deer", "Skiing"}
    assert mask["budget"]["achieved"] <= 0.5
    ckpt = read_checkpoint(run / "checkpoint.safetensors", kind="tracker")
    assert ckpt.sidecar["iterations"] == 2 and ckpt.mask.units == mask["units"]
    assert ckpt.sidecar["training"]["optimizer"] == "adam" and ckpt.sidecar["training"]["weight_decay"] == 0
    assert ckpt.sidecar["training"]["teacher"] == str(fp_tracker)
    report = tmp_path / "report"
    assert benchmark(["--tracker", str(run / "checkpoint.safetensors"), "--data", str(TRACKING),
                      "--split", str(write_split(tmp_path / "val.txt", ["otb/Crossing"])),
                      "--max-frames", "4", "--out", str(report), "--threads", "1"]) == 0
    summary = json.loads((report / "summary.json").read_text())
    (entry,) = summary["trackers"].values()
    assert entry["mean"]["frames"] == 4 and 0 <= entry["mean"]["auc"] <= 1


def test_interrupted_run_resumes_to_the_uninterrupted_weights_without_choosing_again(
        tmp_path, fp_tracker, split, monkeypatch, one_torch_thread):
    full, parted = tmp_path / "full", tmp_path / "parted"
    assert make(settings(full, fp_tracker, split)) == 0
    assert make(settings(parted, fp_tracker, split), stop_at=1) == 0  # as an interruption at iteration 1
    assert not (parted / "checkpoint.safetensors").exists() and (parted / "mask.json").is_file()

    def no_second_choice(*_args, **_kwargs):
        raise AssertionError("the mask was chosen again")

    monkeypatch.setattr(make_module, "select_mask", no_second_choice)
    assert make(settings(parted, fp_tracker, split)) == 0
    a, b = load_file(full / "checkpoint.safetensors"), load_file(parted / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert make(settings(parted, fp_tracker, split)) == 0  # finished: nothing left to do


def test_other_settings_on_the_same_run_are_refused_unless_forced(tmp_path, fp_tracker, split):
    run = tmp_path / "run"
    make_module.claim_run(settings(run, fp_tracker, split))
    with pytest.raises(UsageError, match="--budget 0.5, not 0.3.*--force"):
        make_module.claim_run(settings(run, fp_tracker, split, budget=0.3))
    with pytest.raises(UsageError, match="--mask-source first, not last"):
        make_module.claim_run(settings(run, fp_tracker, split, mask_source="last"))
    (run / "mask.json").write_text("{}")
    make_module.claim_run(settings(run, fp_tracker, split, budget=0.3), force=True)
    assert not (run / "mask.json").exists()
    assert json.loads((run / "make.json").read_text())["settings"]["budget"] == 0.3


def one_line_error(capsys, argv) -> str:
    assert run_cli(main, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def argv(tmp_path, fp_tracker, split, *extra):
    return ["--budget", "0.5", "--data", str(TRACKING), "--split", str(split), "--from", str(fp_tracker),
            "--out", str(tmp_path / "run"), "--threads", "1", "--device", "cpu", *extra]


def test_bad_input_is_one_line_with_exit_2(tmp_path, fp_tracker, split, capsys):
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, split, "--budget", "0.01"))
    assert "[0.0978, 1]" in line and "resnet width 0.25" in line
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, split, "--mask-source", "magic"))
    assert "'magic'" in line and "mixbin-tracking, mixbin-cls, random, iterative" in line
    one_seq = write_split(tmp_path / "one.txt", TRAIN[:1])
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, one_seq))
    assert "1 sequence(s)" in line and "at least 2" in line
    with_val = write_split(tmp_path / "with_val.txt", [*TRAIN, "otb/Crossing"])  # Crossing is a val sequence
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, with_val))
    assert "shares sequences with the val split" in line and "Crossing" in line
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, split, "--width", "0.5"))
    assert "width 0.25" in line and "width 0.5" in line
    line = one_line_error(capsys, argv(tmp_path, fp_tracker, split, "--backbone", "alexnet"))
    assert "resnet" in line and "alexnet" in line
    mask = uniform_mask("resnet", WIDTH, "fp")
    classifier = save_checkpoint(tmp_path / "cls.safetensors", Classifier(build_backbone("resnet", WIDTH), 3),
                                 mask, {})
    line = one_line_error(capsys, argv(tmp_path, classifier, split))
    assert "classifier checkpoint, not a tracker" in line
    assert not (tmp_path / "run").exists()  # nothing written by a refused run


def test_make_argv_is_the_command_that_remakes_a_run():
    """What eval.sweep records as a cell's command parses back to the same settings."""
    from mixbin.make import MakeSettings, build_parser, make_argv

    settings = MakeSettings(budget=0.3, data="DATA", out="runs/x", from_ckpt="fp.safetensors",
                            mask_source="random", iterations=150, search_iterations=150, seed=2, threads=1)
    args = build_parser().parse_args(make_argv(settings))
    assert (args.budget, args.data, args.out, args.from_ckpt, args.mask_source, args.iterations,
            args.search_iterations, args.seed) == (0.3, "DATA", "runs/x", "fp.safetensors", "random", 150, 150, 2)
    assert "--batch-size" not in make_argv(settings)  # defaults are left out
