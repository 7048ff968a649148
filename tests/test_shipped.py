"""What ships in the repository: MixBin masks in masks/ and the model zoo in models/."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from backbones.cli import run_cli
from backbones.cost import __main__ as cost_cli
from tracker.zoo import list_zoo

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MASKS = [f"v1/resnet_cifar10_mixbin_b{b}.json" for b in ("0.5", "0.3", "0.15")] + \
                [f"v1/alexnet_cifar10_mixbin_b{b}.json" for b in ("0.5", "0.3")]  # the v1 zoo's masks, moved unchanged
RESEARCHED_MASKS = sorted(p.name for p in (REPO / "masks").glob("*.json"))  # every current MixBin mask


def test_every_mask_issue_19_asks_for_is_shipped():
    wanted = {f"resnet_{data}_mixbin_b{b}.json" for data in ("cifar10", "tracking") for b in ("0.5", "0.3", "0.15")}
    assert wanted | {f"alexnet_cifar10_mixbin_b{b}.json" for b in ("0.5", "0.3")} <= set(RESEARCHED_MASKS)


@pytest.mark.parametrize("name", RESEARCHED_MASKS)
def test_researched_mask_meets_issue_19s_checks(name):
    from mixbin.report import bound_check

    row = bound_check(REPO / "masks" / name)
    assert row["crisp"] and row["gate_agreement"] and row["meets"], row


@pytest.mark.parametrize("name", SHIPPED_MASKS)
def test_shipped_mask_loads_and_keeps_its_budget(name, capsys):
    assert cost_cli.main(["--mask", str(REPO / "masks" / name), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    mask = json.loads((REPO / "masks" / name).read_text())
    assert report["budget"] <= mask["budget"]["target"] + 1e-9
    assert mask["search"]["method"] == "mixbin" and mask["search"]["data"] == "cifar10"


def test_zoo_ships_the_default_backbone_at_five_budgets_under_40_mb():
    zoo = list_zoo(REPO / "models")
    assert {str(e.budget) for e in zoo} >= {"1.0", "0.5", "0.3", "0.15", "min"}
    for entry in zoo:
        asked = 0.06 if entry.budget == "min" else float(entry.budget)
        assert entry.backbone == "resnet" and entry.achieved <= asked + 1e-9
    assert sum(p.stat().st_size for p in (REPO / "models").iterdir()) < 40e6


def test_shipped_provenance_names_checkpoints_that_ship():
    """Every models/ path a zoo sidecar or a mask names as its source (init_from, teacher, --from) exists
    and is an FP tracker: moving a model without updating what names it fails here."""
    named = set()
    for side in [*(REPO / "models").glob("*.json"), *(REPO / "masks").glob("*.json")]:
        meta = json.loads(side.read_text())
        training = meta.get("training") or {}
        named |= {training.get(k) for k in ("init_from", "teacher")}
        search = (meta.get("mask") or meta).get("search") or {}
        named |= set(re.findall(r"--from (\S+)", f"{search.get('command', '')} {search.get('made_by', '')}"))
    named = {n for n in named if n and n.startswith("models/")}
    assert "models/v2/resnet_b1.0.safetensors" in named
    for path in named:
        assert (REPO / path).is_file(), path
        units = json.loads((REPO / path).with_suffix(".json").read_text())["mask"]["units"]
        assert set(units.values()) == {"fp"}, path


@needs_shared
def test_demo_own_video_command_with_the_shipped_model(tmp_path, capsys, monkeypatch):
    import cv2

    import demo

    monkeypatch.delenv("B2TRACK_MODELS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    out, boxes = tmp_path / "out.mp4", tmp_path / "boxes.txt"
    argv = ["--video", str(VIDEOS / "bag.avi"), "--budget", "0.3", "--init", "292,128,146,132",
            "--output", str(out), "--save-boxes", str(boxes), "--no-display", "--device", "cpu"]
    assert run_cli(demo.main, argv) == 0
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 196 == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    b = np.loadtxt(boxes, delimiter=",", ndmin=2)
    assert b.shape == (196, 6) and np.all(np.isfinite(b))  # x,y,w,h,confidence,lost
    assert set(np.unique(b[:, 5])) <= {0, 1} and np.all((b[:, 4] >= 0) & (b[:, 4] <= 1))
    assert "resnet_b0.3" in capsys.readouterr().out


@needs_shared
def test_demo_on_the_tennis_image_folder_with_the_shipped_model(tmp_path, capsys, monkeypatch):
    import cv2

    import demo

    monkeypatch.delenv("B2TRACK_MODELS", raising=False)
    out, boxes = tmp_path / "tennis.mp4", tmp_path / "tennis.txt"
    argv = ["--images", str(VIDEOS / "tennis"), "--budget", "0.3", "--init", "305,110,165,252",
            "--output", str(out), "--save-boxes", str(boxes), "--no-display", "--device", "cpu"]
    assert run_cli(demo.main, argv) == 0
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 70
    assert np.loadtxt(boxes, delimiter=",", ndmin=2).shape == (70, 6)  # x,y,w,h,confidence,lost
