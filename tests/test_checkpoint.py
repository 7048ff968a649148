"""The one checkpoint format: kinds (and old sidecars without one), pairing of weights and sidecar, NaN
refusal, and the fall-back to a run's last complete version."""
import json
import shutil

import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from backbones.checkpoint import (
    FORMAT,
    CheckpointError,
    commit_version,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from backbones.mask import uniform_mask
from backbones.registry import build_classifier
from tracker.checkpoint import load_checkpoint
from tracker.model import build_siamfc
from tracker.siamfc import load_tracker


def classifier_checkpoint(tmp_path):
    mask = uniform_mask("resnet", 0.25, "fp")
    model = build_classifier("resnet", 10, 0.25)
    return save_checkpoint(tmp_path / "cls.safetensors", model, mask, {"seed": 0})


def tracker_checkpoint(path):
    mask = uniform_mask("resnet", 0.25, "binary")
    return save_checkpoint(path, build_siamfc(mask), mask, {"iterations": 0})


def test_a_classifier_checkpoint_loaded_as_a_tracker_says_so(tmp_path):
    path = classifier_checkpoint(tmp_path)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["kind"] == "classifier" and side["environment"]["torch"] == torch.__version__
    with pytest.raises(CheckpointError) as err:
        load_tracker(path)
    message = str(err.value)
    assert "is a classifier checkpoint" in message and "not a tracker checkpoint" in message
    assert "\n" not in message
    tracker = build_siamfc(uniform_mask("resnet", 0.25, "fp"))
    load_weights(tracker, path)  # its backbone still initialises a tracker


def test_shipped_zoo_sidecars_without_kind_still_load():
    path = REPO / "models" / "v1" / "resnet_bmin.safetensors"  # written before sidecars had a kind
    ckpt = read_checkpoint(path, kind="tracker")
    assert "kind" not in ckpt.sidecar and ckpt.kind == "tracker"
    model, meta = load_checkpoint(path)
    assert model.backbone.mask_states() == meta["mask"]["units"]


def test_an_old_classifier_sidecar_without_kind_is_inferred(tmp_path):
    path = classifier_checkpoint(tmp_path)
    ckpt = read_checkpoint(path)
    save_file(dict(ckpt.tensors), str(path), metadata={"format": FORMAT})  # as mixbin wrote them before kinds
    side = json.loads(path.with_suffix(".json").read_text())
    for key in ("kind", "id", "environment"):
        side.pop(key)
    path.with_suffix(".json").write_text(json.dumps(side))
    assert read_checkpoint(path).kind == "classifier"
    with pytest.raises(CheckpointError, match="is a classifier checkpoint"):
        load_checkpoint(path)


def test_nan_weights_are_refused_on_load_and_on_save(tmp_path):
    path = tracker_checkpoint(tmp_path / "t.safetensors")
    ckpt = read_checkpoint(path)
    tensors = dict(ckpt.tensors)
    name = "backbone.stem.0.weight"
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0, 0, 0] = float("nan")
    metadata = {"format": FORMAT, "kind": "tracker", "id": ckpt.sidecar["id"], "backbone": "resnet",
                "width": "0.25", "units": json.dumps(ckpt.mask.units, sort_keys=True)}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=f"tensor {name} holds NaN or infinite values"):
        load_tracker(path)
    model = build_siamfc(ckpt.mask)
    with torch.no_grad():
        model.backbone.stem[0].weight.fill_(float("inf"))
    with pytest.raises(CheckpointError, match="refusing to write"):
        save_checkpoint(tmp_path / "inf.safetensors", model, ckpt.mask, {})
    assert not (tmp_path / "inf.safetensors").exists()


def test_weights_and_sidecar_of_different_writes_fall_back_to_the_last_complete_version(tmp_path, capsys):
    run = tmp_path / "run"
    names = ("checkpoint.safetensors", "checkpoint.json")
    for iteration in (1, 2):
        commit_version(run, iteration, lambda folder: tracker_checkpoint(folder / names[0]), publish=names)
    newest = read_checkpoint(run / names[0]).sidecar["id"]
    # As if killed between publishing the weights and the sidecar: weights of 2, sidecar of 1.
    shutil.copyfile(run / ".checkpoints" / "00000001" / names[1], run / names[1])
    ckpt = read_checkpoint(run / names[0])
    assert ckpt.sidecar["id"] == newest and ckpt.path.parent.name == "00000002"
    assert "come from different writes" in capsys.readouterr().err
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in names:
        shutil.copyfile(run / name, alone / name)
    with pytest.raises(CheckpointError, match="come from different writes"):
        read_checkpoint(alone / names[0])
