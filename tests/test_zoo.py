"""The model zoo: naming, listing, budget matching, errors and the one-line loader (tiny zoo in tmp_path)."""
import json

import numpy as np
import pytest
import torch

from backbones.checkpoint import CheckpointError, save_checkpoint
from backbones.cli import UsageError
from backbones.cost import reference_costs
from backbones.mask import Mask, with_budget
from backbones.registry import build_backbone
from tracker.model import build_siamfc
from tracker.zoo import DEFAULT_MODELS_DIR, find_zoo, list_zoo, load_zoo_tracker, parse_budget, zoo_dir

WIDTH = 0.25


def budget_mask(target: float | str, width: float = WIDTH) -> Mask:
    """A resnet mask within ``target`` (units kept FP first to last while they fit; 'min' = all binary)."""
    costs = reference_costs("resnet", width)
    states = {name: "binary" for name in build_backbone("resnet", width).units()}
    if target != "min":
        for name in states:
            states[name] = "fp"
            if costs.budget(states) > float(target) + 1e-9:
                states[name] = "binary"
    return with_budget(Mask("resnet", width, states), None if target == "min" else float(target))


def make_zoo(folder, budgets=("1.0", "0.5", "min"), width: float = WIDTH):
    """Write ``resnet_b<budget>`` checkpoints (seeded, untrained) into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for budget in budgets:
        torch.manual_seed(0)
        mask = budget_mask(budget, width)
        save_checkpoint(folder / f"resnet_b{budget}.safetensors", build_siamfc(mask), mask, {"iterations": 0})
    return folder


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return make_zoo(tmp_path_factory.mktemp("zoo"))


def test_list_zoo_reads_names_and_sidecars(zoo, tmp_path):
    entries = list_zoo(zoo)
    assert [e.name for e in entries] == ["resnet_b1.0", "resnet_b0.5", "resnet_bmin"]
    assert [e.budget for e in entries] == [1.0, 0.5, "min"]
    assert entries[0].achieved == 1.0 and 0 < entries[2].achieved < entries[1].achieved <= 0.5
    assert all(e.backbone == "resnet" and e.path.suffix == ".safetensors" for e in entries)
    assert list_zoo(tmp_path / "absent") == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("not a model")
    (other / "notes.safetensors").write_bytes(b"ignored: not named <backbone>_b<budget>")
    assert list_zoo(other) == []


@pytest.mark.parametrize("asked, name", [
    ("1.0", "resnet_b1.0"), (1, "resnet_b1.0"), ("1", "resnet_b1.0"), (0.5, "resnet_b0.5"),
    ("0.50", "resnet_b0.5"), (0.501, "resnet_b0.5"), ("min", "resnet_bmin"), ("MIN", "resnet_bmin")])
def test_find_zoo_matches_to_two_decimals(zoo, asked, name):
    assert find_zoo(asked, zoo) == zoo / f"{name}.safetensors"


def test_min_is_the_smallest_shipped_even_without_a_min_file(tmp_path):
    zoo = make_zoo(tmp_path / "z", budgets=("1.0", "0.5"))
    assert find_zoo("min", zoo).name == "resnet_b0.5.safetensors"


def test_budget_not_shipped_lists_the_shipped_ones_and_how_to_train(zoo, tmp_path):
    with pytest.raises(UsageError) as err:
        find_zoo(0.3, zoo)
    message = str(err.value)
    assert "\n" not in message and "0.3" in message
    assert "shipped budgets: 1.0, 0.5, min (0." in message
    assert "python -m mixbin.make --budget " in message
    with pytest.raises(UsageError, match="shipped budgets: none"):
        find_zoo("min", tmp_path / "empty")


@pytest.mark.parametrize("bad", ["abc", "0", "-0.2", "1.5", "nan", "", "0.3x"])
def test_parse_budget_rejects_non_budgets(bad):
    with pytest.raises(UsageError, match="budget must be a number in \\(0, 1\\] or 'min'"):
        parse_budget(bad)


def test_models_dir_default_and_env_override(zoo, monkeypatch):
    monkeypatch.delenv("B2TRACK_MODELS", raising=False)
    assert zoo_dir() == DEFAULT_MODELS_DIR and DEFAULT_MODELS_DIR.name == "models"
    monkeypatch.setenv("B2TRACK_MODELS", str(zoo))
    assert zoo_dir() == zoo and len(list_zoo()) == 3
    assert find_zoo("min") == zoo / "resnet_bmin.safetensors"


def test_load_zoo_tracker_is_a_ready_tracker(zoo, monkeypatch):
    monkeypatch.setenv("B2TRACK_MODELS", str(zoo))
    tracker = load_zoo_tracker(0.5)
    entry = next(e for e in list_zoo() if e.name == "resnet_b0.5")
    assert tracker.name == "resnet_b0.5" and tracker.budget == pytest.approx(entry.achieved, abs=1e-4)
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    tracker.init(frame, [60, 40, 30, 30])
    box = tracker.update(frame)
    assert box.shape == (4,) and np.all(np.isfinite(box))


def test_broken_sidecar_is_one_clear_error_and_blocks_no_other_budget(tmp_path):
    zoo = make_zoo(tmp_path / "z", budgets=("1.0", "0.5"))
    side = zoo / "resnet_b1.0.json"
    data = json.loads(side.read_text())
    data["mask"].pop("budget")
    side.write_text(json.dumps(data))
    assert [e.name for e in list_zoo(zoo)] == ["resnet_b0.5"]
    assert find_zoo(0.5, zoo).name == "resnet_b0.5.safetensors"
    with pytest.raises(CheckpointError, match="resnet_b1.0.safetensors: its sidecar's mask.budget.achieved"):
        find_zoo(1.0, zoo)
    side.unlink()
    with pytest.raises(CheckpointError, match="has no sidecar"):
        find_zoo(1.0, zoo)
    assert find_zoo("min", zoo).name == "resnet_b0.5.safetensors"
