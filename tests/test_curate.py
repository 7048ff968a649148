"""Curated crops form a GOT-10k-layout dataset whose exemplar regions are exactly the 255 crops' centres."""
import numpy as np
import pytest
from conftest import TRACKING, needs_shared

from backbones.cli import UsageError
from tracker.curate import curate
from tracker.ops import box_center, exemplar_size
from tracker.sequences import load_sequence, load_sequences


@needs_shared
def test_curated_group2_keeps_valid_frames_and_centres_targets(tmp_path):
    seq = load_sequence(TRACKING / "uav123" / "data_seq" / "UAV123_10fps" / "group2", TRACKING)[0]
    seq.frames, seq.boxes = seq.frames[160:190], seq.boxes[160:190]  # spans its 5 NaN rows
    assert curate([seq], tmp_path / "cur") == int(seq.valid.sum()) == 25
    (curated,) = load_sequences(tmp_path / "cur")
    assert curated.layout == "got10k" and len(curated.frames) == 25 and curated.valid.all()
    for box in curated.boxes:
        np.testing.assert_allclose(box_center(box), [127, 127], atol=1e-3)
        assert exemplar_size(box[2:]) == pytest.approx(127, abs=1e-2)
    with pytest.raises(UsageError, match="already exists"):
        curate([seq], tmp_path / "cur")


def test_nothing_to_curate_is_one_line_and_writes_nothing(tmp_path, capsys):
    from backbones.cli import run_cli
    from tracker.curate import main
    from tracker.sequences import Sequence

    boxes = np.array([[1, 1, 5, 5], [np.nan] * 4])
    one = Sequence("one", [tmp_path / "a.jpg", tmp_path / "b.jpg"], boxes, "otb")
    with pytest.raises(UsageError, match="nothing to curate: none of the 1 sequences"):
        curate([one], tmp_path / "cur")
    (tmp_path / "empty.txt").write_text("# no entries\n")
    data = tmp_path / "data"
    data.mkdir()
    assert run_cli(main, ["--data", str(data), "--split", str(tmp_path / "empty.txt"),
                          "--out", str(tmp_path / "cur")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lists no sequence" in err[0]  # the reader refuses an empty split first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "empty.txt"]


@pytest.mark.parametrize("argv, expected", [
    (["--quality", "101"], "--quality: expected an integer from 0 to 100"),
    (["--out", "{tmp}/file"], "is a file, not a folder"),
    (["--out", "{tmp}/file/cur"], "is a file, not a folder"),
    (["--out", "{tmp}/old"], "already exists"),
])
def test_bad_out_or_quality_is_refused_before_work(tmp_path, capsys, argv, expected):
    from backbones.cli import run_cli
    from tracker.curate import main

    (tmp_path / "file").write_text("mine")
    (tmp_path / "data").mkdir()
    (tmp_path / "old").mkdir()
    argv = [a.format(tmp=tmp_path) for a in argv]
    full = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "cur"), *argv]
    assert run_cli(main, full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "file", "old"]
