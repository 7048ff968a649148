"""eval.benchmark --dataset presets on the shared data's benchmark folders (OTB, UAV123, DTB70, VOT, LaSOT)
and on GOT-10k / LaSOT layouts built from them; a root without the layout is one line, exit 2."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from backbones.cli import run_cli
from eval.benchmark import main
from eval.datasets import load_dataset, otb2015_names

REPO = Path(__file__).resolve().parents[1]
TRACKING = REPO.parent / "shared" / "data" / "tracking"
pytestmark = pytest.mark.skipif(not (TRACKING / "otb" / "Crossing").is_dir(),
                                reason=f"real tracking data not found under {TRACKING}")


def test_otb2015_runs_the_listed_folders_with_otb_spans(capfd: pytest.CaptureFixture) -> None:
    seqs, origin = load_dataset("otb2015", TRACKING / "otb")
    names = otb2015_names()
    assert len(names) == 98 and "Basketball" in names  # 100 targets: Jogging and Skating2 hold two
    assert origin == {"dataset": "otb2015", "listed": 98, "missing": 98 - len(os.listdir(TRACKING / "otb"))}
    assert {s.name.split(".")[0] for s in seqs} == set(os.listdir(TRACKING / "otb"))
    assert "of the 98 entries of the OTB2015 list are not under" in capfd.readouterr().err
    by_name = {s.name: s for s in seqs}
    diving = by_name["Diving"]  # 231 images, 215 rows: OTB (and the got10k toolkit) run frames 1-215
    assert len(diving.frames) == 215 and diving.valid.all() and diving.frames[-1].name == "0215.jpg"
    assert by_name["David"].frames[0].name == "0300.jpg" and len(by_name["David"].frames) == 230


@pytest.mark.parametrize("name, folder, expected", [
    ("uav123", "uav123", {"group1_4", "car16_1", "wakeboard7", "bike1"}),
    ("dtb70", "dtb70", {"Gull1", "Gull2", "Animal3", "Surfing06"}),
    ("vot", "vot", {"bag", "ball1", "car", "skiing", "yamaha"}),
    ("lasot", "lasot", {"airplane-1"}),
])
def test_presets_read_the_shared_benchmark_folders(name: str, folder: str, expected: set[str]) -> None:
    seqs, origin = load_dataset(name, TRACKING / folder)
    assert expected <= {s.name for s in seqs} and origin["dataset"] == name
    if name == "uav123":
        assert origin["listed"] == 123 and len(seqs) == 123 - origin["missing"]
        assert next(s for s in seqs if s.name == "group1_4").frames[0].name == "001309.jpg"
    if name == "lasot":
        assert origin["listed"] == 280  # the got10k toolkit's LaSOT test list (no testing_set.txt here)


def test_lasot_official_layout_and_its_testing_set(tmp_path: Path) -> None:
    source = TRACKING / "lasot" / "airplane" / "airplane-1"
    seq_dir = tmp_path / "airplane" / "airplane-1"
    seq_dir.mkdir(parents=True)
    (seq_dir / "img").symlink_to(source / "img")
    (seq_dir / "groundtruth.txt").write_bytes((source / "groundtruth_rect.txt").read_bytes())  # official name
    (tmp_path / "testing_set.txt").write_text("airplane-1\nairplane-9\n")
    seqs, origin = load_dataset("lasot", tmp_path)
    shared, _ = load_dataset("lasot", TRACKING / "lasot")
    assert origin["listed"] == 2 and origin["missing"] == 1 and [s.name for s in seqs] == ["airplane-1"]
    np.testing.assert_array_equal(seqs[0].boxes, shared[0].boxes)
    assert seqs[0].layout == "lasot"


def build_got10k_val(root: Path, entries: dict[str, str], frames: int = 12) -> None:
    """A GOT-10k val split of OTB sequences' first frames (linked), 0-based boxes, and its list.txt."""
    from tracker.sequences import load_sequence

    for name, entry in entries.items():
        seq = load_sequence(entry, TRACKING)[0]
        folder = root / "val" / name
        folder.mkdir(parents=True)
        for i, frame in enumerate(seq.frames[:frames], 1):
            (folder / f"{i:08d}.jpg").symlink_to(frame)
        np.savetxt(folder / "groundtruth.txt", seq.boxes[:frames], fmt="%.4f", delimiter=",")
        np.savetxt(folder / "absence.label", np.zeros(frames, int), fmt="%d")
    (root / "val" / "list.txt").write_text("\n".join(entries) + "\n")


def test_got10k_val_runs_its_list(tmp_path: Path) -> None:
    build_got10k_val(tmp_path, {"GOT-10k_Val_000001": "otb/Crossing", "GOT-10k_Val_000002": "otb/Couple"})
    (tmp_path / "val" / "list.txt").write_text("GOT-10k_Val_000002\n")  # the list decides, not the folders
    seqs, origin = load_dataset("got10k-val", tmp_path)
    assert [s.name for s in seqs] == ["GOT-10k_Val_000002"] and origin["listed"] == 1
    assert seqs[0].layout == "got10k" and len(seqs[0].frames) == 12


def test_cli_dataset_run_records_the_preset(tmp_path: Path) -> None:
    out = tmp_path / "r"
    argv = ["--tracker", "static", "--dataset", "dtb70", "--data", str(TRACKING / "dtb70"),
            "--max-frames", "4", "--out", str(out)]
    assert run_cli(main, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["sequences"]) == ["Animal3", "Gull1", "Gull2", "Surfing06"]
    assert json.loads((out / "settings.json").read_text())["dataset"] == "dtb70"


@pytest.mark.parametrize("dataset, folder, says", [
    ("otb2015", "vot", "no OTB2015 sequence found in its official layout"),
    ("got10k-val", "otb", "not a GOT-10k root (no val/list.txt)"),
    ("uav123", "otb", "not a UAV123 root"),
    ("lasot", "dtb70", "no LaSOT sequence found"),
    ("dtb70", "uav123", "no DTB70 sequence found"),
    ("vot", "lasot", "no VOT sequence found"),
])
def test_a_root_without_the_layout_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, dataset: str,
                                               folder: str, says: str) -> None:
    argv = ["--tracker", "static", "--dataset", dataset, "--data", str(TRACKING / folder), "--out",
            str(tmp_path / "r")]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "r").exists()


def test_dataset_with_split_or_without_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for extra in (["--data", str(TRACKING / "dtb70"), "--split", "x.txt"], []):
        assert run_cli(main, ["--tracker", "static", "--dataset", "dtb70", *extra, "--out",
                              str(tmp_path / "r")]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert run_cli(main, ["--tracker", "static", "--dataset", "otb", "--data", str(TRACKING), "--out",
                          str(tmp_path / "r")]) == 2
    assert "otb2015" in capsys.readouterr().err  # the choices are named
