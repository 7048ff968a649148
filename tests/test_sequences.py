"""Sequence readers on the real benchmark sequences and on layouts built in tmp_path from real frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backbones.cli import UsageError
from tracker.sequences import (
    Sequence,
    SequenceError,
    find_sequences,
    load_sequence,
    load_sequences,
    read_frame,
    split_held_out,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracking"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real tracking data absent: {DATA}")
UAV = "uav123/data_seq/UAV123_10fps"


@pytest.fixture(scope="module")
def real() -> dict[str, Sequence]:
    """Every real sequence by name."""
    if not DATA.is_dir():
        pytest.skip(f"real tracking data absent: {DATA}")
    return {s.name: s for s in find_sequences(DATA)}


def _raw(rel: str, row: int) -> list[float]:
    """Row ``row`` (0-based) of a real annotation file, parsed independently of the reader."""
    line = (DATA / rel).read_text().splitlines()[row]
    return [float(v) for v in line.replace("\t", ",").split(",")]


def _frames(folder: Path, names: list[str], src: str = "vot/bag") -> None:
    """Populate ``folder`` with symlinks to real frames of ``src`` under the given file names."""
    folder.mkdir(parents=True, exist_ok=True)
    real = sorted((DATA / src).glob("*.jpg"))
    for name, target in zip(names, real, strict=False):
        (folder / name).symlink_to(target)


def _one_line_error(call, *needles: str) -> str:
    """Run ``call``, expect a one-line SequenceError (a UsageError) containing every needle."""
    with pytest.raises(SequenceError) as info:
        call()
    msg = str(info.value)
    assert isinstance(info.value, UsageError) and "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# ---------------------------------------------------------------- real data


@needs_data
def test_all_real_sequences_found(real):
    layouts = [s.layout for s in real.values()]
    assert len(real) == 64  # 62 folders; Jogging and Skating2 have two targets each
    assert {k: layouts.count(k) for k in set(layouts)} == {"otb": 37, "dtb70": 4, "vot": 5, "uav123": 18}
    assert sum(len(s) for s in real.values()) == 15554 + 307 + 230  # frame-target pairs
    for s in real.values():
        assert s.boxes.dtype == np.float64 and s.boxes.shape == (len(s.frames), 4)
        assert all(f.is_file() for f in (s.frames[0], s.frames[-1]))


@needs_data
@pytest.mark.parametrize("name, rel", [
    ("Couple", "otb/Couple/groundtruth_rect.txt"),  # tab
    ("Dog1", "otb/Dog1/groundtruth_rect.txt"),  # comma
    ("Girl", "otb/Girl/groundtruth_rect.txt"),  # tab + CRLF
    ("Jogging.1", "otb/Jogging/groundtruth_rect.1.txt"),  # tab, no final newline
    ("Human3", "otb/Human3/groundtruth_rect.txt"),  # comma, no final newline
    ("Gull2", "dtb70/Gull2/groundtruth_rect.txt"),
    ("wakeboard7", "uav123/anno/UAV123_10fps/wakeboard7.txt"),
])
def test_rows_are_read_whole_and_made_zero_based(real, name, rel):
    seq = real[name]
    for row in (0, len(seq) - 1):
        x, y, w, h = _raw(rel, row)
        np.testing.assert_array_equal(seq.boxes[row], [x - 1, y - 1, w, h])
    assert seq.valid.all()


@needs_data
def test_known_first_rows(real):
    np.testing.assert_array_equal(real["Couple"].boxes[0], [50, 46, 25, 62])  # file: 51 47 25 62
    np.testing.assert_array_equal(real["Girl"].boxes[-1], [50, 25, 36, 43])  # file: 51 26 36 43 CRLF
    assert len(real["Girl"]) == 500 and len(real["Human3"]) == 199 and len(real["Jogging.1"]) == 307


@needs_data
def test_football1_annotation_shorter_than_frames(real):
    seq = real["Football1"]
    assert len(seq) == 81 and seq.frames[-1].name == "0081.jpg"
    assert seq.valid[:74].all() and not seq.valid[74:].any()
    assert np.isnan(seq.boxes[74:]).all()


@needs_data
def test_jogging_two_targets(real):
    one, two = real["Jogging.1"], real["Jogging.2"]
    assert one.frames == two.frames and len(one) == 307
    np.testing.assert_array_equal(two.boxes[0], [179, 78, 37, 114])
    assert "Jogging" not in real
    assert [s.name for s in load_sequence("otb/Jogging", DATA)] == ["Jogging.1", "Jogging.2"]


@needs_data
def test_vot_polygons_images_in_root_and_color(real):
    bag, ball = real["bag"], real["ball1"]
    assert bag.layout == ball.layout == "vot"
    assert bag.frames[0].parent.name == "bag" and len(bag) == 196
    assert ball.frames[0].parent.name == "color" and len(ball) == 105
    # bag row 1: polygon whose bounds are 292.23,128.36 .. 438.19,260.83 (1-based), as in
    # videos/bag.avi.init.txt
    np.testing.assert_allclose(bag.boxes[0], [291.23, 127.36, 145.96, 132.47], atol=1e-9)
    # ball1 row 1: 246,231.5,269.5,231.5,269.5,208.5,246,208.5
    np.testing.assert_allclose(ball.boxes[0], [245, 207.5, 23.5, 23])


@needs_data
@pytest.mark.parametrize("folder, name, first, last, nans", [
    ("group1", "group1_4", "001309.jpg", "001625.jpg", 0),
    ("group2", "group2_2", "000303.jpg", "000591.jpg", 5),
    ("group3", "group3_2", "000523.jpg", "000943.jpg", 47),
    ("car14", "car14", "000001.jpg", "000443.jpg", 25),
])
def test_uav123_subsequences_offsets_and_nan_rows(real, folder, name, first, last, nans):
    seq = real[name]
    assert folder not in real or folder == name
    assert seq.layout == "uav123" and seq.frames[0].parent.name == folder
    assert (seq.frames[0].name, seq.frames[-1].name) == (first, last)
    missing = np.isnan(seq.boxes).all(axis=1)
    assert missing.sum() == nans and not seq.valid[missing].any() and seq.valid[~missing].all()
    assert [s.name for s in load_sequence(f"{UAV}/{folder}", DATA)] == [name]


@needs_data
def test_group2_nan_rows_are_171_to_175(real):
    assert np.flatnonzero(~real["group2_2"].valid).tolist() == [170, 171, 172, 173, 174]


@needs_data
def test_boxes_outside_image_and_tiny_boxes_stay_valid(real):
    biker = real["Biker"]
    assert (biker.boxes[71:77, 1] < 0).all() and biker.valid.all()  # rows 72-77 above the image
    wake = real["wakeboard5"]
    assert wake.boxes[:, 2:].min() == 0.25 and wake.valid.all()


@needs_data
def test_splits():
    train = load_sequences(DATA, DATA / "splits" / "train.txt")
    val = load_sequences(DATA, "val")  # short form: <root>/splits/val.txt
    assert len(train) == 48 and sum(len(s) for s in train) == 12702
    names = {s.name for s in train}
    assert {"Jogging.1", "Jogging.2", "Skating2.1", "Skating2.2", "group1_4", "group2_2"} <= names
    assert [s.name for s in val[:7]] == ["Couple", "Crossing", "Football1", "MotorRolling", "bag", "ball1",
                                         "wakeboard7"]
    assert len(val) == 16 and sum(len(s) for s in val) == 3389
    assert not {s.name for s in train} & {s.name for s in val}
    assert len(load_sequences(DATA, "all.txt")) == 64 == len(load_sequences(DATA))


@needs_data
def test_held_out_sequences_are_disjoint_and_fixed():
    """Every 8th train sequence by name is held out (MixBin probes, calibration); the rest is trained on."""
    train = load_sequences(DATA, DATA / "splits" / "train.txt")
    held, fit = split_held_out(list(reversed(train)))
    assert [s.name for s in held] == ["Bolt", "Freeman1", "S0601", "Surfer", "building5", "truck4_2"]
    assert len(fit) == 42 and not {s.name for s in held} & {s.name for s in fit}
    assert {s.name for s in held} | {s.name for s in fit} == {s.name for s in train}
    with pytest.raises(UsageError, match="at least 2 train sequences"):
        split_held_out(train[:1])


@needs_data
def test_splits_v1_kept():
    """The lists before the data grew (December 2026) stay under splits/v1/."""
    train = load_sequences(DATA, DATA / "splits" / "v1" / "train.txt")
    val = load_sequences(DATA, DATA / "splits" / "v1" / "val.txt")
    assert len(train) == 18 and {"Jogging.1", "Jogging.2", "group1_4", "group2_2"} <= {s.name for s in train}
    assert len(val) == 10 and not {s.name for s in train} & {s.name for s in val}
    assert len(load_sequences(DATA, DATA / "splits" / "v1" / "all.txt")) == 28


@needs_data
def test_split_entries_naming_one_target(tmp_path):
    split = tmp_path / "mine.txt"
    split.write_text(f"# picks\n\notb/Jogging.2\r\n{UAV}/group1_4\n  otb/Couple  \n")
    assert [s.name for s in load_sequences(DATA, split)] == ["Jogging.2", "group1_4", "Couple"]


# ---------------------------------------------------------------- layouts built from real frames


@needs_data
def test_got10k_layout(tmp_path):
    split = tmp_path / "got10k" / "val"
    for name in ("GOT-10k_Val_000001", "GOT-10k_Val_000002"):
        seq_dir = split / name
        _frames(seq_dir, [f"{i:08d}.jpg" for i in range(1, 6)])
        (seq_dir / "groundtruth.txt").write_text("".join(f"{10 + i},{20 + i},30,40\n" for i in range(5)))
        (seq_dir / "absence.label").write_text("0\n0\n1\n0\n0\n")
        (seq_dir / "cover.label").write_text("8\n8\n0\n0\n5\n")
    (split / "list.txt").write_text("GOT-10k_Val_000001\n")
    seqs = find_sequences(tmp_path)
    assert [s.name for s in seqs] == ["GOT-10k_Val_000001"]  # list.txt restricts the split
    seq = seqs[0]
    assert seq.layout == "got10k" and len(seq) == 5
    np.testing.assert_array_equal(seq.boxes[0], [10, 20, 30, 40])  # already 0-based: no shift
    assert seq.valid.tolist() == [True, True, False, False, True]  # absent (3) and cover 0 (3, 4)
    assert load_sequence(split / "GOT-10k_Val_000002")[0].layout == "got10k"


@needs_data
def test_otb_start_frame_offset_and_whitespace_delimiters(tmp_path):
    seq_dir = tmp_path / "otb" / "David"
    _frames(seq_dir / "img", [f"{i:04d}.jpg" for i in range(300, 305)], src="otb/Couple/img")
    (seq_dir / "groundtruth_rect.txt").write_text("161 65  75 95\n162 65 75 95\n 163\t65 75 95\n\n")
    (seq,) = load_sequence("otb/David", tmp_path)
    assert seq.layout == "otb" and seq.frames[0].name == "0300.jpg" and len(seq) == 5
    np.testing.assert_array_equal(seq.boxes[:3], [[160, 64, 75, 95], [161, 64, 75, 95], [162, 64, 75, 95]])
    assert seq.valid.tolist() == [True, True, True, False, False]


@needs_data
def test_dtb70_recognised_by_five_digit_names(tmp_path):
    _frames(tmp_path / "drone" / "Bird" / "img", [f"{i:05d}.jpg" for i in range(1, 4)])
    (tmp_path / "drone" / "Bird" / "groundtruth_rect.txt").write_text("1,1,2,2\n")
    assert find_sequences(tmp_path)[0].layout == "dtb70"


def _uav_tree(root: Path) -> Path:
    """A UAV123-style folder holding the whole frame range (1..10) of two overlapping sub-sequences."""
    _frames(root / "data_seq" / "UAV123_10fps" / "grp", [f"{i:06d}.jpg" for i in range(1, 11)])
    anno = root / "anno" / "UAV123_10fps"
    anno.mkdir(parents=True)
    (anno / "grp_1.txt").write_text("".join(f"{i},1,5,5\n" for i in range(1, 5)))
    (anno / "grp_2.txt").write_text("".join(f"{i},2,5,5\n" for i in range(4, 11)))
    return anno


@needs_data
def test_uav123_config_frame_ranges(tmp_path):
    _uav_tree(tmp_path)
    (tmp_path / "configSeqs.m").write_text(
        "seqUAV123={struct('name','grp_1','path','D:\\data_seq\\UAV123\\grp\\','startFrame',1,'endFrame',12,"
        "'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n"
        "struct('name','grp_1','path','D:\\data_seq\\UAV123_10fps\\grp\\','startFrame',1,'endFrame',4,"
        "'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n"
        "struct('name','grp_2','path','D:\\data_seq\\UAV123_10fps\\grp\\','startFrame',4,'endFrame',10,"
        "'nz',6,'ext','jpg','init_rect',[0,0,0,0])};\n")
    one, two = find_sequences(tmp_path)
    assert (one.name, two.name) == ("grp_1", "grp_2")
    assert [f.name for f in one.frames] == [f"{i:06d}.jpg" for i in range(1, 5)]  # the 10fps entry wins
    assert [f.name for f in two.frames] == [f"{i:06d}.jpg" for i in range(4, 11)]
    np.testing.assert_array_equal(two.boxes[0], [3, 1, 5, 5])


@needs_data
def test_uav123_subsequences_without_config_fail(tmp_path):
    _uav_tree(tmp_path)
    _one_line_error(lambda: find_sequences(tmp_path), "grp_1.txt", "configSeqs.m")


# ---------------------------------------------------------------- errors


def test_missing_root(tmp_path):
    _one_line_error(lambda: find_sequences(tmp_path / "nope"), "tracking data root not found", "nope")
    _one_line_error(lambda: load_sequences(tmp_path / "nope", "train"), "tracking data root not found")


def test_no_sequence_under_root(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    _one_line_error(lambda: find_sequences(tmp_path), "no tracking sequence found", str(tmp_path), "OTB",
                    "GOT-10k")
    _one_line_error(lambda: load_sequence(tmp_path), "not a tracking sequence folder")


@needs_data
def test_malformed_annotation_line(tmp_path):
    _frames(tmp_path / "Couple" / "img", ["0001.jpg", "0002.jpg", "0003.jpg"], src="otb/Couple/img")
    gt = tmp_path / "Couple" / "groundtruth_rect.txt"
    gt.write_text("51,47,25,62\n52,47,25,62\n53,47,x7,62\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:3:", "53,47,x7,62")
    gt.write_text("51,47,25,62\n52,47,25\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:2:", "expected 4 numbers")


@needs_data
def test_vot_value_count(tmp_path):
    _frames(tmp_path / "vot" / "box", ["00000001.jpg", "00000002.jpg"])
    gt = tmp_path / "vot" / "box" / "groundtruth.txt"
    gt.write_text("11,21,30,40\n1,2,3,4,5,6\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:2:", "1,2,3,4,5,6", "4 or 8")
    gt.write_text("11,21,30,40\n")  # 4-value VOT rows are 1-based boxes
    np.testing.assert_array_equal(find_sequences(tmp_path)[0].boxes, [[10, 20, 30, 40], [np.nan] * 4])


@needs_data
def test_split_errors(tmp_path):
    _one_line_error(lambda: load_sequences(DATA, tmp_path / "missing.txt"), "split file not found",
                    "missing.txt")
    split = tmp_path / "bad.txt"
    split.write_text("# header\notb/Couple\n\notb/Nope\n")
    _one_line_error(lambda: load_sequences(DATA, split), f"{split}:4:", "'otb/Nope'")
    split.write_text("otb\n")  # a folder that exists but is no sequence
    _one_line_error(lambda: load_sequences(DATA, split), f"{split}:1:", "'otb'")


def test_valid_mask():
    boxes = [[0, 0, 5, 5], [0, 0, 0, 5], [np.nan] * 4, [-3, -2, 0.25, 1], [0, 0, 5, np.inf]]
    seq = Sequence("s", [Path(f"{i}.jpg") for i in range(5)], boxes, "otb")
    assert seq.valid.tolist() == [True, False, False, True, False]
    seq.absent = np.array([True, False, False, False, False])
    assert seq.valid.tolist() == [False, False, False, True, False]


# ---------------------------------------------------------------- bad data: one line naming file:line


@needs_data
def test_vot_long_term_nan_rows_and_sequence_file(real):
    ski = real["skiing"]
    assert ski.layout == "vot" and len(ski) == 230 and ski.frames[0].parent.name == "color"
    assert (~ski.valid).sum() == 69 and np.isnan(ski.boxes[~ski.valid]).all()  # lowercase nan rows = absent


def _otb_tree(root: Path, rows: str, frames: int = 3) -> Path:
    """An OTB folder of ``frames`` real 320x240 Couple frames with annotation ``rows``; returns the file."""
    _frames(root / "Couple" / "img", [f"{i:04d}.jpg" for i in range(1, frames + 1)], src="otb/Couple/img")
    gt = root / "Couple" / "groundtruth_rect.txt"
    gt.write_text(rows)
    return gt


@needs_data
@pytest.mark.parametrize("row, needle", [
    ("52,47,1e400,62", "not finite"), ("52,inf,25,62", "not finite"), ("-1e300,47,25,62", "beyond"),
    ("1e300,1e300,1e300,1e300", "beyond"), ("52,47,nan,62", "mixes NaN"), ("52,47,-5,62", "negative"),
    ("52,47,25", "expected 4 numbers"), ("52,47,25,62,1", "expected 4 numbers"), ("52,47,0x19,62", "'0x19'"),
])
def test_bad_box_values(tmp_path, row, needle):
    gt = _otb_tree(tmp_path, f"51,47,25,62\n{row}\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:2: ", needle)


@needs_data
def test_nan_zero_rows_fewer_rows_crlf_bom_are_valid(tmp_path):
    _otb_tree(tmp_path, "\ufeff51;47;25;62\r\nNaN,NaN,NaN,NaN\r\n0,0,0,0\r\n", frames=4)
    (seq,) = find_sequences(tmp_path)
    np.testing.assert_array_equal(seq.boxes[0], [50, 46, 25, 62])
    assert seq.valid.tolist() == [True, False, False, False]  # NaN row, LaSOT's 0,0,0,0, no row


@needs_data
def test_whole_file_problems(tmp_path):
    gt = _otb_tree(tmp_path, "51,47,25,62\n" * 4)
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:4: ", "row 4 has no frame", "3 images")
    gt.write_text(" \n\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}: ", "no annotation row")
    gt.write_text("nan,nan,nan,nan\n51,47,0,62\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}: ", "no valid box")
    gt.write_bytes(b"51,47,25,62\n52,47,25,62 caf\xe9\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:2: ", "not UTF-8")


@needs_data
@pytest.mark.parametrize("row", ["321,10,20,20", "10,241,20,20", "-30,10,20,20", "10,-19.5,20,20"])
def test_first_box_outside_its_frame(tmp_path, row):
    gt = _otb_tree(tmp_path, f"nan,nan,nan,nan\n{row}\n")  # row 2 is the first valid box; Couple is 320x240
    _one_line_error(lambda: find_sequences(tmp_path), f"{gt}:2: ", "outside its 320x240 frame", "0002.jpg")


def _got10k_tree(root: Path, absence: str, cover: str = "1\n1\n1\n") -> Path:
    seq_dir = root / "val" / "GOT-10k_Val_000001"
    _frames(seq_dir, [f"{i:08d}.jpg" for i in range(1, 4)])
    (seq_dir / "groundtruth.txt").write_text("10,20,30,40\n11,21,30,40\n12,22,30,40\n")
    (seq_dir / "absence.label").write_text(absence)
    (seq_dir / "cover.label").write_text(cover)
    return seq_dir


@needs_data
@pytest.mark.parametrize("value", ["nan", "1e400", "1e300", "2", "-1", "1.0", "x"])
def test_got10k_bad_labels(tmp_path, value):
    seq_dir = _got10k_tree(tmp_path, f"0\n0\n{value}\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_dir / 'absence.label'}:3: ", "0..1")


@needs_data
def test_got10k_label_counts(tmp_path):
    seq_dir = _got10k_tree(tmp_path, "0\n0\n0\n", "1\n1\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_dir / 'cover.label'}: ", "2 labels for 3 frames")
    (seq_dir / "cover.label").write_text("1\n1\n9\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_dir / 'cover.label'}:3: ", "0..8")
    (seq_dir / "cover.label").write_text("0\n0\n0\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_dir / 'groundtruth.txt'}: ", "no valid box")


@needs_data
@pytest.mark.parametrize("row", ["nan,20,30,40", "1e400,20,30,40", "1e300,20,30,40", "10,20,-30,40"])
def test_got10k_bad_boxes(tmp_path, row):
    seq_dir = _got10k_tree(tmp_path, "0\n0\n0\n")
    (seq_dir / "groundtruth.txt").write_text(f"10,20,30,40\n{row}\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_dir / 'groundtruth.txt'}:2: ")
    (seq_dir / "groundtruth.txt").write_text("10,20,30,40\nnan,nan,nan,nan\n")  # absent: fine
    assert find_sequences(tmp_path)[0].valid.tolist() == [True, False, False]


@needs_data
@pytest.mark.parametrize("entry, needle", [
    ("../x", "inside the data root"), ("otb/../../x", "inside the data root"), ("/etc", "inside the data"),
    ("x\0y", "inside the data root"), (".hidden", "hidden"), ("otb/.git", "hidden"), ("../" * 3, "inside"),
    ("n" * 300, "File name too long"), ("/".join(["d" * 200] * 25), "File name too long"),
    ("otb/Couple.2", "names no sequence"), ("otb/Couple\n".strip() + " extra", "names no sequence"),
])
def test_bad_split_entries(tmp_path, entry, needle):
    split = tmp_path / "bad.txt"
    split.write_text(f"otb/Couple\n{entry}\n")
    msg = _one_line_error(lambda: load_sequences(DATA, split), f"{split}:2: ", needle)
    assert len(msg) < 300


@needs_data
def test_split_file_problems(tmp_path):
    split = tmp_path / "s.txt"
    split.write_text("# nothing yet\n\n")
    _one_line_error(lambda: load_sequences(DATA, split), f"{split}: ", "lists no sequence")
    split.write_text("otb/Jogging\n./otb/Couple/\notb/Jogging.2\n")
    _one_line_error(lambda: load_sequences(DATA, split), f"{split}:3: ",
                    "Jogging.2 is already listed at line 1")
    split.write_bytes(b"otb/Couple\notb/Caf\xe9\n")
    _one_line_error(lambda: load_sequences(DATA, split), f"{split}:2: ", "not UTF-8")
    _one_line_error(lambda: load_sequences(DATA, "x" * 5000), "split file", "File name too long")


@needs_data
def test_vot_sequence_file_names_the_frames(tmp_path):
    seq_dir = tmp_path / "vot" / "lt"
    _frames(seq_dir / "color", ["00000001.jpg", "00000002.jpg", "00000003.jpg", "thumb.jpg"])
    (seq_dir / "groundtruth.txt").write_text("11,21,30,40\nnan,nan,nan,nan\n12,22,30,40\n")
    seq_file = seq_dir / "sequence"
    seq_file.write_text("name=lt\nfps=30\nchannels.color=color/%08d.jpg\n")
    (seq,) = find_sequences(tmp_path)
    assert [f.name for f in seq.frames] == ["00000001.jpg", "00000002.jpg", "00000003.jpg"]
    assert seq.valid.tolist() == [True, False, True]
    for bad, needle in [("color/%06d.jpg", "no image"), ("../color/%08d.jpg", "inside"),
                        ("color/x.jpg", "inside")]:
        seq_file.write_text(f"name=lt\nchannels.color={bad}\n")
        _one_line_error(lambda: find_sequences(tmp_path), f"{seq_file}:2: ", needle)
    seq_file.write_text("name=lt\nnonsense\n")
    _one_line_error(lambda: find_sequences(tmp_path), f"{seq_file}:2: ", "key=value")


@needs_data
def test_linked_sequence_folders_are_found_once(tmp_path):
    (tmp_path / "otb").mkdir()
    (tmp_path / "otb" / "Couple").symlink_to(DATA / "otb" / "Couple", target_is_directory=True)
    (tmp_path / "otb" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [s.name for s in find_sequences(tmp_path)] == ["Couple"]


@needs_data
def test_read_frame(tmp_path):
    image = read_frame(DATA / "otb" / "Couple" / "img" / "0001.jpg")
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    data = (DATA / "otb" / "Couple" / "img" / "0001.jpg").read_bytes()
    for name, content, needle in [("zero.jpg", b"", "0 bytes"),
                                  ("cut.jpg", data[: len(data) // 2], "truncated"),
                                  ("junk.jpg", b"not an image" * 50, "cannot decode")]:
        (tmp_path / name).write_bytes(content)
        _one_line_error(lambda n=name: read_frame(tmp_path / n), f"{tmp_path / name}: ", needle)
    _one_line_error(lambda: read_frame(tmp_path / "missing.jpg"), "missing.jpg: ", "No such file")
    _one_line_error(lambda: read_frame(tmp_path), f"{tmp_path}: ", "cannot read image")
