"""Training runs: resume reaches the uninterrupted run's weights; torchrun with 2 CPU processes works."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TRACKING, needs_shared
from safetensors.torch import load_file

from tracker.train import build_parser, train

pytestmark = needs_shared


def args_for(out, iterations=4, *extra):
    return build_parser().parse_args([
        "--backbone", "resnet", "--width", "0.25", "--mask", "fp", "--data", str(TRACKING),
        "--split", str(TRACKING / "splits" / "train.txt"), "--iterations", str(iterations),
        "--batch-size", "2", "--out", str(out), "--workers", "0", "--save-every", "1", "--seed", "5", *extra])


def test_resume_continues_at_saved_iteration_and_matches_uninterrupted(tmp_path):
    assert train(args_for(tmp_path / "full")) == 0
    assert train(args_for(tmp_path / "split"), stop_at=2) == 0
    meta = json.loads((tmp_path / "split" / "checkpoint.json").read_text())
    assert meta["iterations"] == 2
    assert torch.load(tmp_path / "split" / "train_state.pt", weights_only=True)["iteration"] == 2
    halfway = load_file(tmp_path / "split" / "checkpoint.safetensors")
    assert train(args_for(tmp_path / "split", 4, "--resume")) == 0
    full = load_file(tmp_path / "full" / "checkpoint.safetensors")
    resumed = load_file(tmp_path / "split" / "checkpoint.safetensors")
    assert json.loads((tmp_path / "split" / "checkpoint.json").read_text())["iterations"] == 4
    for name, tensor in full.items():
        assert torch.equal(tensor, resumed[name]), name
    assert not torch.equal(halfway["backbone.layer2.3.conv.conv.weight"], full["backbone.layer2.3.conv.conv.weight"])


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    from backbones.cli import run_cli
    from tracker.train import main

    argv = ["--backbone", "resnet", "--width", "0.25", "--data", str(TRACKING), "--iterations", "2",
            "--out", str(tmp_path / "none"), "--resume"]
    assert run_cli(main, argv) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="gloo DDP test written for Linux")
def test_torchrun_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "tracker.train", "--backbone", "resnet", "--width", "0.25", "--data", str(TRACKING),
           "--split", str(TRACKING / "splits" / "train.txt"), "--iterations", "2", "--batch-size", "2",
           "--out", str(out), "--workers", "0", "--device", "cpu", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["iterations"] == 2 and meta["training"]["world_size"] == 2
    from tracker.checkpoint import load_checkpoint

    load_checkpoint(out / "checkpoint.safetensors")
