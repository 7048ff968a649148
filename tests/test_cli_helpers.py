"""backbones.cli: numeric option types, atomic files and folders, temporaries of killed runs, signals."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, TRACKING, VIDEOS

from backbones.cli import (
    UsageError,
    atomic_dir,
    atomic_path,
    float_range,
    int_range,
    remove_stale_temporaries,
    run_cli,
)

GONE = 2**22 + 1  # no process can have this pid (Linux pids stay below 2**22)


def test_ranges_refuse_instead_of_clamping():
    assert int_range(0, 100)("100") == 100 and float_range(0, 4, low_open=True)("4") == 4.0
    for parse, text in ((int_range(0, 100), "101"), (int_range(0, 100), "-1"), (int_range(0, 100), "1.5"),
                        (float_range(0, 4, low_open=True), "0"), (float_range(0, 4), "inf"),
                        (float_range(0, 4), "nan"), (float_range(0, 4), "4.001")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_stale_temporaries_of_gone_writers_are_removed_and_no_others(tmp_path):
    target = tmp_path / "o.mp4"
    gone_file = tmp_path / f".o.mp4.{GONE}.abcdefgh.tmp.mp4"
    gone_dir = tmp_path / f".o.mp4.{GONE}.zz_9zz_9.tmp"
    alive = tmp_path / f".o.mp4.{os.getppid()}.abcdefgh.tmp.mp4"  # a writer still running
    other = tmp_path / f".o.mp4.5.{GONE}.abcdefgh.tmp"  # a temporary of the target "o.mp4.5"
    legacy = tmp_path / ".o.mp4.abcdefgh.tmp.mp4"  # no pid: not known to be ours
    for path in (gone_file, alive, other, legacy):
        path.write_bytes(b"x")
    gone_dir.mkdir()
    (gone_dir / "inside").write_text("x")
    assert sorted(remove_stale_temporaries(target)) == sorted([gone_file, gone_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, other, legacy))
    with atomic_path(target) as tmp:  # every atomic write cleans up after killed writers of its target
        (tmp_path / f".o.mp4.{GONE}.qwertyui.tmp.mp4").write_bytes(b"x")
        tmp.write_bytes(b"new")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"newer")
    assert target.read_bytes() == b"newer" and not (tmp_path / f".o.mp4.{GONE}.qwertyui.tmp.mp4").exists()


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(UsageError, match="already exists"):
        out.mkdir()
        with atomic_dir(out):
            pass
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("failed half way")
    assert [p.name for p in tmp_path.iterdir()] == ["report"] and (out / "old.txt").read_text() == "old"
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_sigterm_unwinds_through_atomic_writes(tmp_path, capsys):
    target = tmp_path / "out.txt"
    before = signal.getsignal(signal.SIGTERM)

    def main(argv):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10**8):  # the handler raises at the next bytecode
                pass
        return 0

    assert run_cli(main, []) == 143
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) is before
    assert capsys.readouterr().err.startswith("terminated")


INTERRUPT_AT_TORCH = textwrap.dedent("""\
    import os, runpy, signal, sys

    class CtrlCWhileTorchLoads:
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlCWhileTorchLoads())
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
""")


@pytest.mark.parametrize("argv", [
    ["demo", "--video", str(VIDEOS / "bag.avi"), "--init", "1,1,5,5", "--no-display"],
    ["eval.benchmark", "--tracker", str(REPO / "models" / "resnet_b0.3.safetensors"), "--data", str(TRACKING),
     "--split", "{split}", "--out", "report"],
], ids=["demo", "eval.benchmark"])
def test_ctrl_c_while_torch_loads_is_one_line(tmp_path, argv):
    if not (REPO / "models" / "resnet_b0.3.safetensors").is_file() or not TRACKING.is_dir():
        pytest.skip("needs the shipped zoo and ../shared/data")
    (tmp_path / "split.txt").write_text("otb/Crossing\n")
    argv = [a.format(split=tmp_path / "split.txt") for a in argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", INTERRUPT_AT_TORCH, *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 130 and done.stderr.strip().splitlines() == ["interrupted"], \
        (done.returncode, done.stdout[-500:], done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.txt"]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupts_held_finish_the_block_then_stop(signum, code, capsys):
    from backbones.cli import interrupts_held

    steps = []

    def main(_argv):
        with interrupts_held():
            os.kill(os.getpid(), signum)
            steps.append("inside")  # the block is never split by the signal
        steps.append("after")  # not reached: the held signal acts when the block ends
        return 0

    assert run_cli(main, []) == code and steps == ["inside"]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
