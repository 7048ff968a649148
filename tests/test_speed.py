"""eval.speed: one JSON object with the fields the docs quote, and exit 2 for a kernel path this CPU lacks."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import TRACKING

from backbones.checkpoint import save_checkpoint
from backbones.cli import run_cli
from backbones.kernels import ENV, PATHS, available_paths
from backbones.mask import uniform_mask
from eval.speed import main
from tracker.model import build_siamfc

BAG = TRACKING / "vot" / "bag"


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    mask = uniform_mask("resnet", 0.25, "binary")
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, build_siamfc(mask), mask, {"iterations": 0})
    return path


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for src in sorted(BAG.glob("*.jpg"))[:3]:
        (folder / src.name).symlink_to(src)
    return folder


@pytest.mark.skipif(not BAG.is_dir(), reason="../shared/data/tracking/vot/bag absent")
def test_speed_json(checkpoint, frames, capsys):
    args = ["--checkpoint", str(checkpoint), "--images", str(frames), "--threads", "1", "--repeats", "1",
            "--json"]
    assert run_cli(main, args) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert out["kernel"] == available_paths()[0] and out["threads"] == 1 and out["frames"] == 3
    assert out["ratio_packed_vs_fp"] > 0 and out["fps_packed"] > 0 and out["fps_fp"] > 0
    assert [row["name"] for row in out["layers"]] == [f"layer{i}.{j}.conv" for i in (1, 2) for j in range(4)]
    for row in out["layers"]:
        assert row["ms_float"] > 0 and row["ms_packed"] > 0
        ratio = row["ms_float"] / row["ms_packed"]
        assert row["speedup_vs_float"] == pytest.approx(ratio, rel=0.01, abs=0.01)


def test_speed_refuses_a_missing_kernel_path(checkpoint, capsys, monkeypatch):
    missing = next((p for p in PATHS if p not in available_paths()), "sse9")
    monkeypatch.setenv(ENV, missing)
    assert run_cli(main, ["--checkpoint", str(checkpoint), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and "available:" in err


def test_speed_cpu_clock_needs_one_thread(checkpoint, capsys):
    assert run_cli(main, ["--checkpoint", str(checkpoint), "--clock", "cpu", "--threads", "2", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads 1" in err
