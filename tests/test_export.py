"""Deploy checkpoints (tracker.export): 1 bit per binary weight, a third of the source at most, the same
boxes teacher-forced, and one-line errors for corrupt files or another backbone."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, TRACKING

from backbones.checkpoint import CheckpointError
from backbones.cli import run_cli
from tracker.checkpoint import load_checkpoint
from tracker.export import export_deploy, is_deploy, load_deploy, main
from tracker.siamfc import SiamFCTracker, calibrated_config, load_tracker

SOURCE = REPO / "models" / "resnet_bmin.safetensors"
BAG = TRACKING / "vot" / "bag"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "bmin_deploy.safetensors"
    export_deploy(SOURCE, out)
    return out


def test_deploy_is_small_and_one_bit_per_weight(deploy):
    side = json.loads(deploy.with_suffix(".json").read_text())
    assert side["kind"] == "deploy" and is_deploy(deploy) and not is_deploy(SOURCE)
    assert side["bits_per_binary_weight"] == 1.0 and side["binary_weights"] == 645120
    assert deploy.stat().st_size <= SOURCE.stat().st_size / 3


def test_deploy_loads_with_the_source_signs(deploy):
    source, _ = load_checkpoint(SOURCE)
    model, meta = load_deploy(deploy)
    assert meta["mask"]["units"] == source.backbone.mask_states()
    for name, unit in source.backbone.units().items():
        got = model.backbone.units()[name]
        assert torch.equal(got.conv.weight >= 0, unit.conv.weight >= 0), name
        assert torch.equal(got.bn_bin.running_var, unit.bn_bin.running_var)


@pytest.mark.skipif(not BAG.is_dir(), reason="../shared/data/tracking/vot/bag absent")
def test_deploy_tracks_like_its_source_teacher_forced(deploy):
    import cv2

    from tracker.sequences import load_sequence

    seq = load_sequence(BAG)[0]
    frames = [cv2.imread(str(f)) for f in seq.frames[:15]]
    model, meta = load_checkpoint(SOURCE)
    source = SiamFCTracker(model, calibrated_config(meta, SOURCE))  # its own calibrated settings
    tracker = load_tracker(deploy)
    assert tracker.kernel_path != "float" and tracker.cfg == source.cfg  # the deploy keeps them
    source.init(frames[0], seq.boxes[0])
    tracker.init(frames[0], seq.boxes[0])
    for frame in frames[1:]:
        for attr in ("center", "target_size", "z_size", "x_size"):
            setattr(tracker, attr, copy.copy(getattr(source, attr)))
        assert np.abs(tracker.update(frame) - source.update(frame)).max() <= 0.01


def test_corrupt_deploy_is_one_line(deploy, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(deploy.read_bytes()[:5000])
    shutil.copy(deploy.with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(CheckpointError) as info:
        load_tracker(bad)
    assert "\n" not in str(info.value) and "corrupt" in str(info.value)


def test_deploy_of_another_backbone_is_one_line(deploy, tmp_path):
    other = tmp_path / "other.safetensors"
    shutil.copy(deploy, other)
    side = json.loads(deploy.with_suffix(".json").read_text())
    from backbones.mask import uniform_mask

    side["mask"] = uniform_mask("alexnet", 1.0, "binary").to_json()
    other.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError) as info:
        load_tracker(other)
    assert "\n" not in str(info.value) and "alexnet" in str(info.value)


def test_export_cli_refuses_to_overwrite_its_input(capsys):
    assert run_cli(main, ["--checkpoint", str(SOURCE), "--out", str(SOURCE)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
