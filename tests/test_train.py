"""Training runs: every interruption (SIGKILL at each step of a checkpoint write, SIGINT, SIGTERM) resumes
to the uninterrupted run's weights; bad settings and data are one-line errors; torchrun, 2 CPU processes."""
import errno
import json
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TRACKING, needs_shared
from safetensors.torch import load_file

from backbones import checkpoint
from backbones.checkpoint import VERSIONS, complete_versions, read_checkpoint
from backbones.cli import run_cli
from tracker.loop import DivergedError
from tracker.train import CHECKPOINT, STATE, UNIT, main, parse_args, train

pytestmark = needs_shared

ITERATIONS = 3
WRITE_STEPS = ["weights", "sidecar", "state", "commit", f"publish:{CHECKPOINT}", "publish:checkpoint.json",
               "prune"]


def argv_for(out, iterations=ITERATIONS, *extra, data=None):
    where = ["--data", str(data)] if data else ["--data", str(TRACKING), "--split",
                                                  str(TRACKING / "splits" / "train.txt")]
    return ["--backbone", "resnet", "--width", "0.25", "--mask", "fp", *where,
            "--iterations", str(iterations), "--batch-size", "2", "--out", str(out), "--workers", "0",
            "--save-every", "1", "--seed", "5", "--threads", "1", "--device", "cpu", *extra]


def config_for(out, iterations=ITERATIONS, *extra):
    return parse_args(argv_for(out, iterations, *extra))


def weights(run):
    return load_file(run / CHECKPOINT)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def in_child(fault, out, iterations=ITERATIONS):
    """Train in a forked process with ``B2TRACK_FAULT=fault``; returns its exit code (-9: SIGKILL)."""

    def target():
        os.environ[checkpoint.FAULT_ENV] = fault
        torch.set_num_threads(1)
        os._exit(train(config_for(out, iterations)))

    child = multiprocessing.get_context("fork").Process(target=target)
    child.start()
    child.join(120)
    return child.exitcode


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The weights of an uninterrupted run."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert train(config_for(out)) == 0
    return weights(out)


def test_resume_continues_at_saved_iteration_and_matches_uninterrupted(tmp_path, reference):
    out = tmp_path / "split"
    assert train(config_for(out), stop_at=1) == 0
    assert json.loads((out / "checkpoint.json").read_text())["iterations"] == 1
    (version,) = complete_versions(out, UNIT)
    assert version.name == "00000001" and torch.load(version / STATE, weights_only=True)["iteration"] == 1
    halfway = weights(out)
    assert train(config_for(out, ITERATIONS, "--resume")) == 0
    side = json.loads((out / "checkpoint.json").read_text())
    assert side["iterations"] == ITERATIONS and side["kind"] == "tracker"
    assert side["environment"] == {"device": "cpu", "torch": torch.__version__}
    assert_same_weights(reference, weights(out))
    assert not torch.equal(halfway["backbone.layer2.3.conv.conv.weight"],
                           reference["backbone.layer2.3.conv.conv.weight"])
    assert [p.name for p in complete_versions(out, UNIT)] == ["00000003", "00000002"]  # the last two kept


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_sigkill_at_each_step_of_a_checkpoint_write_then_resume_is_exact(tmp_path, reference, step):
    out = tmp_path / "run"
    assert in_child(f"after:{step}#2", out) == -9  # killed while writing iteration 2's checkpoint
    committed = [int(p.name) for p in complete_versions(out, UNIT)]
    assert committed == ([2, 1] if WRITE_STEPS.index(step) >= WRITE_STEPS.index("commit") else [1])
    side = read_checkpoint(out / CHECKPOINT, kind="tracker").sidecar  # the pair a user loads is consistent
    assert side["iterations"] in (1, 2)
    assert train(config_for(out, ITERATIONS, "--resume")) == 0
    assert_same_weights(reference, weights(out))
    assert not [p.name for p in (out / VERSIONS).iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_real_signal_mid_iteration_saves_at_the_boundary_and_resume_is_exact(tmp_path, reference, signame,
                                                                            code, capsys):
    out = tmp_path / "run"
    # The signal arrives during iteration 2 (after its forward pass): that iteration completes and is saved.
    assert in_child(f"after:forward#2={signame}", out) == code
    side = json.loads((out / "checkpoint.json").read_text())
    assert side["iterations"] == 2
    saved = torch.load(out / VERSIONS / "00000002" / STATE, weights_only=True)
    assert saved["iteration"] == 2 and saved["scheduler"]["last_epoch"] == 2
    assert int(weights(out)["backbone.stem.1.num_batches_tracked"]) == 2 * 2  # exemplar + search per step
    assert train(config_for(out, ITERATIONS, "--resume")) == 0
    assert_same_weights(reference, weights(out))


def one_line_error(capsys, argv) -> str:
    assert run_cli(main, argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def error_after_training(capsys, argv) -> str:
    """The error line of a run that fails after it started training (below its progress bar)."""
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n")
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(config_for(out, 2)) == 0
    capsys.readouterr()
    assert "--width 0.25, not 0.5" in one_line_error(capsys,
                                                     [*argv_for(out, 2, "--resume"), "--width", "0.5"])
    assert "--seed 5, not 6" in one_line_error(capsys, [*argv_for(out, 2, "--resume"), "--seed", "6"])
    assert "--lr 0.01, not 0.02" in one_line_error(capsys, [*argv_for(out, 2, "--resume"), "--lr", "0.02"])
    assert "already done 2 iterations; --iterations 1 is fewer" in one_line_error(
        capsys, argv_for(out, 1, "--resume"))
    assert "already holds a training run" in one_line_error(capsys, argv_for(out, 2))
    assert json.loads((out / "checkpoint.json").read_text())["seed"] == 5
    assert run_cli(main, argv_for(out, 2, "--resume")) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert "no complete checkpoint" in one_line_error(capsys, argv_for(tmp_path / "none", 2, "--resume"))


def test_nan_loss_stops_with_one_line_keeping_the_last_finite_checkpoint(tmp_path, capsys, monkeypatch):
    import tracker.train as tt

    real, calls = tt.balanced_logistic_loss, []

    def nan_at_third(logits, *args):
        calls.append(1)
        loss = real(logits, *args)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(tt, "balanced_logistic_loss", nan_at_third)
    out = tmp_path / "run"
    with pytest.raises(DivergedError, match="became nan at iteration 3.*keeps the last finite checkpoint "
                                            r"\(iteration 2\)"):
        train(config_for(out, 4))
    calls.clear()
    line = error_after_training(capsys, argv_for(tmp_path / "cli", 4))
    assert "loss became nan" in line
    ckpt = read_checkpoint(out / CHECKPOINT, kind="tracker")
    assert ckpt.sidecar["iterations"] == 2 and all(torch.isfinite(t).all() for t in ckpt.tensors.values())


def test_full_disk_fails_with_one_line_and_keeps_earlier_checkpoints(tmp_path, capsys, monkeypatch):
    real, calls = checkpoint.save_file, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", fills_up)
    out = tmp_path / "run"
    line = error_after_training(capsys, argv_for(out, 3))
    assert "cannot write the checkpoint of iteration 2" in line and "No space left on device" in line
    assert [p.name for p in complete_versions(out, UNIT)] == ["00000001"]
    assert read_checkpoint(out / CHECKPOINT).sidecar["iterations"] == 1
    assert not [p for p in (out / VERSIONS).iterdir() if p.name.startswith(".")]


def test_bad_options_and_outputs_are_refused_before_any_work(tmp_path, capsys):
    base = argv_for(tmp_path / "run", 2)
    for option, value, words in [("--lr", "-1", "--lr"), ("--batch-size", "0", "--batch-size"),
                                 ("--batch-size", "100000000", "in [1, 4096]"), ("--width", "100", "(0, 4]"),
                                 ("--color-jitter", "2", "--color-jitter"), ("--seed", "-1", "--seed"),
                                 ("--workers", "-2", "--workers"), ("--lr", "nan", "--lr"),
                                 ("--device", "banana", "banana"), ("--lr-end", "1", "must not exceed --lr")]:
        assert words in one_line_error(capsys, [*base, option, value])
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is a file" in one_line_error(capsys, [*base, "--out", str(afile)])
    assert "is a file" in one_line_error(capsys, [*base, "--out", str(afile / "run")])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            assert "not writable" in one_line_error(capsys, [*base, "--out", str(locked / "run")])
    finally:
        locked.chmod(0o700)
    assert not (tmp_path / "run").exists()


def test_data_without_pairs_or_with_corrupt_frames_is_one_line(tmp_path, capsys):
    seq = tmp_path / "data" / "Seq"
    (seq / "img").mkdir(parents=True)
    for i in range(3):
        name = f"{i + 1:04d}.jpg"
        (seq / "img" / name).symlink_to(TRACKING / "otb" / "Crossing" / "img" / name)
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\nNaN,NaN,NaN,NaN\nNaN,NaN,NaN,NaN\n")
    argv = argv_for(tmp_path / "run", 2, data=tmp_path / "data")
    assert "no training pair" in one_line_error(capsys, argv)
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    for i in (2, 3):  # the first frame stays readable (the reader checks it); later ones are 0-byte JPEGs
        (seq / "img" / f"{i:04d}.jpg").unlink()
        (seq / "img" / f"{i:04d}.jpg").write_bytes(b"")
    assert "cannot read training frame" in error_after_training(capsys, argv)
    with_workers = argv_for(tmp_path / "run1", 2, "--workers", "1", data=tmp_path / "data")
    line = error_after_training(capsys, with_workers)
    assert "cannot read training frame" in line and "empty image file" in line


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
