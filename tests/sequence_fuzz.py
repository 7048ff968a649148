"""Seeded mutation fuzz of the sequence readers (tests/test_sequence_fuzz.py, experiments/fuzz_readers.py).

One case = one annotation tree built in a fresh folder from real shared sequences (frames symlinked,
annotation and split files copied), one mutation of a text file, a frame or the split file, and one
load. The readers pass a case when loading gives consistent sequences (boxes (len(frames), 4) float64,
each row finite or all NaN, some valid box) or a one-line SequenceError naming the culprit, at the
mutated line when the mutation makes exactly one line invalid. Anything else is a failure.
"""
from __future__ import annotations

import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from tracker import sequences as readers
from tracker.sequences import Sequence, SequenceError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracking"
IMAGE = re.compile(r"\.(jpe?g|png|bmp)$", re.IGNORECASE)
NEWLINE = re.compile(rb"\r\n|\r|\n")
# (kind, source folder under DATA, its place in the tree, a row index to keep in the window): real
# sequences covering every reader quirk.
SOURCES = (
    ("otb", "otb/Couple", "otb/Couple", 0),  # tab
    ("otb", "otb/Jogging", "otb/Jogging", 0),  # two targets, no final newline
    ("otb", "otb/Football1", "otb/Football1", 74),  # fewer rows than frames
    ("otb", "otb/Girl", "otb/Girl", 0),  # CRLF
    ("otb", "otb/David", "otb/David", 0),  # frames start at 0300.jpg
    ("otb", "dtb70/Gull2", "dtb70/Gull2", 0),
    ("otb", "uavdt/S0310", "uavdt/S0310", 0),  # non-numeric frame stems
    ("otb", "lasot/airplane/airplane-1", "lasot/airplane/airplane-1", 0),
    ("vot", "vot/bag", "vot/bag", 0),  # polygons, frames beside groundtruth.txt
    ("vot", "vot/ball1", "vot/ball1", 0),  # color/
    ("vot", "vot/skiing", "vot/skiing", 138),  # VOT-LT: sequence file, lowercase nan rows from row 139
    ("uav123", "uav123/data_seq/UAV123_10fps/group2", "uav123/data_seq/UAV123_10fps/group2", 170),  # NaN rows
    ("uav123", "uav123/data_seq/UAV123_10fps/car16", "uav123/data_seq/UAV123_10fps/car16", 0),  # no final \n
    ("got10k", "otb/Crossing", "got10k/val/GOT-10k_Val_000001", 0),  # built from Crossing's frames and boxes
)
UAV_ANNO = {"group2": "group2_2.txt", "car16": "car16_1.txt"}
WINDOW = (4, 16)  # frames kept of each source (a window of real frames and rows keeps a tree small)
BAD_TOKENS = ("inf", "-inf", "1e400", "-1e300", "1e300", "1e6", "x", "0x1F", "1..2", "--3", "\u2013", "nan(",
              "\u221e")
BAD_LABELS = ("nan", "1e400", "-1", "9", "2.5", "x", "1 1", "١٠")
BAD_SPLIT_LINES = ("../x", "..", ".hidden", "otb/.git", "../../etc", "/etc", "otb/Missing", "x\0y",
                   "n" * 300, "/".join(["d" * 200] * 25), "otb/Couple.9", "C:\\x")


@dataclass
class Text:
    """A copied text file of the tree and what it holds: boxes, labels, seqfile (VOT sequence) or list."""

    path: Path
    kind: str
    sequence: str  # the split entry it belongs to


@dataclass
class Tree:
    """An annotation tree: its root, split file and entries, copied text files and per-frame link folders."""

    root: Path
    split: Path
    entries: list[str]
    texts: list[Text] = field(default_factory=list)
    frame_dirs: list[Path] = field(default_factory=list)


@dataclass
class Expect:
    """What a mutation allows: 'same' (loads as before), 'error' at path[:line], or 'any' of both."""

    kind: str
    path: Path | None = None
    line: int | None = None
    frame: Path | None = None  # a frame the mutation touched: read_frame must read it or fail naming it


@dataclass
class Outcome:
    """One case's result: 'ok', 'error' (clean) or 'FAIL', with a one-line description."""

    status: str
    mutation: str
    detail: str


# ---------------------------------------------------------------- building trees


def _text_kind(name: str) -> str | None:
    if name in ("groundtruth.txt", "groundtruth_rect.txt") or re.fullmatch(r"groundtruth_rect\.\d+\.txt",
                                                                           name):
        return "boxes"
    return {"sequence": "seqfile", "absence.label": "labels", "cover.label": "labels"}.get(name)


def _annotations(kind: str, src: Path) -> list[tuple[Path, str]]:
    """(real annotation file, its name in the tree folder) of a source; UAV123's live in anno/."""
    if kind == "uav123":
        return [(DATA / "uav123" / "anno" / "UAV123_10fps" / UAV_ANNO[src.name], "")]
    return [(p, p.name) for p in sorted(src.iterdir()) if _text_kind(p.name) == "boxes"]


def _frame_folder(kind: str, src: Path) -> Path:
    if kind == "otb" or kind == "got10k":
        return src / "img"
    return src / "color" if (src / "color").is_dir() else src


def _valid_row(line: bytes) -> bool:
    try:
        v = [float(t) for t in re.split(rb"[,;\s]+", line.strip())]
    except ValueError:
        return False
    return all(map(np.isfinite, v)) and (len(v) == 8 or (v[2] > 0 and v[3] > 0))


def _window(rows: list[bytes], frames: int, focus: int, rng: random.Random) -> tuple[int, int]:
    """(start, length) of a frame window around ``focus`` that holds some row and a valid one."""
    for _ in range(100):
        size = rng.randint(*WINDOW)
        start = max(0, min(frames - size, focus - rng.randrange(size) if rng.random() < 0.7 else
                           rng.randrange(frames)))
        if any(_valid_row(r) for r in rows[start:start + size]):
            return start, size
    raise AssertionError(f"no window with a valid row near row {focus}")


def _cut(data: bytes, start: int, size: int) -> bytes:
    """Rows ``start:start+size`` of a text file, keeping its newline style and final-newline state."""
    lines = NEWLINE.split(data)
    final = lines[-1] == b""
    kept = (lines[:-1] if final else lines)[start:start + size]
    sep = b"\r\n" if b"\r\n" in data else b"\n"
    return sep.join(kept) + (sep if final and kept else b"")


def _got10k_texts(folder: Path, rows: list[bytes], rng: random.Random) -> None:
    """GOT-10k files from real OTB rows: 0-based boxes, absence/cover labels, meta_info.ini, list.txt."""
    boxes = [[float(v) for v in re.split(rb"[,\s]+", r.strip())] for r in rows]
    (folder / "groundtruth.txt").write_text("".join(f"{x - 1:.4f},{y - 1:.4f},{w:.4f},{h:.4f}\n"
                                                    for x, y, w, h in boxes))
    gone = set(range(rng.randrange(1, len(rows)), rng.randrange(len(rows), len(rows) + 4)))
    (folder / "absence.label").write_text("".join(f"{int(i in gone)}\n" for i in range(len(rows))))
    (folder / "cover.label").write_text("".join(f"{0 if i in gone else rng.randrange(1, 9)}\n"
                                                for i in range(len(rows))))
    (folder / "meta_info.ini").write_text("[METAINFO]\nobject_class: person\n")
    (folder.parent / "list.txt").write_text(folder.name + "\n")


@cache
def _listing(folder: Path) -> tuple[Path, ...]:
    """A real folder's entries, sorted (read once per process)."""
    return tuple(sorted(folder.iterdir()))


def _place_frames(tree: Tree, kind: str, src: Path, dst: Path, rows: list[bytes], focus: int,
                  rng: random.Random, deep: bool) -> tuple[int, int]:
    """Frames of a source in the tree; returns the (start, length) of the rows to keep.

    A window of frames linked one by one when the tree mutates frames (``deep``) or they lie beside the
    annotation (VOT bag, GOT-10k); else a link to the whole real frame folder, never written through.
    """
    folder = _frame_folder(kind, src)
    frames = [p for p in _listing(folder) if IMAGE.search(p.name)]
    frame_dir = dst if kind == "got10k" else dst / folder.relative_to(src)
    if not deep and (kind in ("otb", "uav123") or kind == "vot" and folder != src):
        frame_dir.parent.mkdir(parents=True, exist_ok=True)
        frame_dir.symlink_to(folder, target_is_directory=True)
        return 0, len(frames)
    start, size = _window(rows, len(frames), focus, rng)
    frame_dir.mkdir(parents=True)
    for i, f in enumerate(frames[start:start + size], 1):
        (frame_dir / (f"{i:08d}.jpg" if kind == "got10k" else f.name)).symlink_to(f)
    if deep:
        tree.frame_dirs.append(frame_dir)
    return start, size


def _add_source(tree: Tree, kind: str, src_rel: str, rel: str, focus: int, rng: random.Random,
                deep: bool) -> None:
    """Put real source ``src_rel`` (or a window of it) at ``rel``: frames linked, text files copied."""
    src, dst = DATA / src_rel, tree.root / rel
    annos = _annotations(kind, src)
    rows = NEWLINE.split(annos[0][0].read_bytes())
    start, size = _place_frames(tree, kind, src, dst, rows, focus, rng, deep)
    if kind != "uav123":  # text files are written into dst
        _outside_data(dst / "x")
    texts = {dst.parent / "list.txt": "list"} if kind == "got10k" else {}
    if kind == "got10k":
        _got10k_texts(dst, rows[start:start + size], rng)
        annos = []
    for p in _listing(src) if kind != "uav123" else ():  # other files: VOT sequence file, LaSOT extras
        if p.is_file() and not IMAGE.search(p.name) and _text_kind(p.name) != "boxes":
            shutil.copyfile(p, dst / p.name)
    for real, name in annos:
        out = dst / name if name else tree.root / "uav123" / "anno" / "UAV123_10fps" / real.name
        out.parent.mkdir(parents=True, exist_ok=True)
        _outside_data(out).write_bytes(_cut(real.read_bytes(), start, size))
        texts[out] = "boxes"
    for p in sorted(dst.iterdir()) if kind != "uav123" else ():
        if p.is_file() and not p.is_symlink() and _text_kind(p.name):
            texts[p] = _text_kind(p.name)
    tree.texts += [Text(p, what, rel) for p, what in texts.items()]


def build_tree(root: Path, rng: random.Random, deep: bool) -> Tree:
    """A tree of 1-3 real sources and a split file listing them (frames linked one by one when ``deep``)."""
    tree = Tree(root, root / "splits" / "fuzz.txt", [])
    for kind, src, rel, focus in rng.sample(SOURCES, rng.choice((1, 1, 2, 3))):
        _add_source(tree, kind, src, rel, focus, rng, deep)
        tree.entries.append(rel)
    tree.split.parent.mkdir(parents=True, exist_ok=True)
    tree.split.write_text("# fuzz split\n" + "".join(f"{e}\n" for e in tree.entries))
    tree.texts.append(Text(tree.split, "split", ""))
    return tree


# ---------------------------------------------------------------- mutations


def _outside_data(path: Path) -> Path:
    """``path``, after checking that writing there cannot reach the real shared data."""
    if path.parent.resolve().is_relative_to(DATA.resolve()):
        raise AssertionError(f"the fuzz must never write into the shared data: {path}")
    return path


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` as a new regular file (unlinking first: a symlink's real target is never written)."""
    _outside_data(path).unlink(missing_ok=True)
    path.write_bytes(data)


def _rows(data: bytes) -> tuple[list[bytes], list[int]]:
    """The physical lines of ``data`` (universal newlines) and the indices of the non-blank ones."""
    lines = NEWLINE.split(data)
    return lines, [i for i, ln in enumerate(lines) if ln.strip()]


def _join(data: bytes, lines: list[bytes]) -> bytes:
    return (b"\r\n" if b"\r\n" in data else b"\n").join(lines)


def _set_value(line: bytes, rng: random.Random, token: bytes | None = None, drop: bool = False) -> bytes:
    """``line`` with one value replaced by ``token``, removed (``drop``) or duplicated (neither)."""
    parts = re.split(rb"([,;\s]+)", line)
    k = rng.choice([k for k in range(0, len(parts), 2) if parts[k]])
    if token is not None:
        parts[k] = token
    elif drop:
        del parts[max(k - 1, 0): k + 1]
    else:
        parts[k] = parts[k] + b"," + parts[k]
    return b"".join(parts)


def _row_mutation(text: Text, rng: random.Random) -> tuple[str, Expect]:
    """Make one row of a boxes/labels file invalid; the reader must fail at exactly that line."""
    data = text.path.read_bytes()
    lines, rows = _rows(data)
    i = rng.choice(rows)
    if text.kind == "labels":
        name, lines[i] = "label", rng.choice(BAD_LABELS).encode()
    else:
        name = rng.choice(("token", "token", "columns", "negative", "nonutf8"))
        if name == "token":
            lines[i] = _set_value(lines[i], rng, rng.choice(BAD_TOKENS).encode())
        elif name == "columns":
            lines[i] = _set_value(lines[i], rng, drop=rng.random() < 0.5)
        elif name == "negative":
            values = [float(v) for v in re.split(rb"[,;\s]+", lines[i].strip())]
            if len(values) != 4:  # a polygon has no size: use a 3-value row instead
                return _row_mutation_columns(text, data, lines, i)
            values[rng.choice((2, 3))] = -rng.choice((0.5, 5.0, 1e4))
            lines[i] = ",".join(f"{v:g}" for v in values).encode()
        else:
            lines[i] = rng.choice((b"\xff", b"\xe9", b"\xc3")) + lines[i]
    _replace(text.path, _join(data, lines))
    return f"{text.kind}:{name}", Expect("error", text.path, i + 1)


def _row_mutation_columns(text: Text, data: bytes, lines: list[bytes], i: int) -> tuple[str, Expect]:
    lines[i] = b"1,2,3"
    _replace(text.path, _join(data, lines))
    return f"{text.kind}:columns", Expect("error", text.path, i + 1)


def _benign(text: Text, rng: random.Random) -> tuple[str, Expect]:
    """A change the readers must not notice: line endings, BOM, delimiters, blank lines."""
    data = text.path.read_bytes()
    name = rng.choice(("crlf", "bom", "delim", "blank"))
    if name == "crlf":
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    elif name == "bom":
        data = b"\xef\xbb\xbf" + data
    elif name == "delim" and text.kind == "boxes":
        new = rng.choice((b"\t", b" ", b";", b", ", b"  "))
        data = re.sub(rb"[,\t]", new, data)
    else:
        data = data + b"\n\n \t\n"
    _replace(text.path, data)
    return f"{text.kind}:{name}", Expect("same")


def _structural(text: Text, rng: random.Random) -> tuple[str, Expect]:
    """Changes that may leave a valid file or not: truncate, delete/repeat rows, NaN rows, empty, remove."""
    data = text.path.read_bytes()
    lines, rows = _rows(data)
    name = rng.choice(("truncate", "delete", "duplicate", "nanrow", "empty", "remove"))
    name = "empty" if name == "nanrow" and text.kind != "boxes" else name
    if name == "truncate":
        data = data[:rng.randrange(len(data))]
    elif name == "delete":
        for i in sorted(rng.sample(rows, rng.randint(1, min(5, len(rows)))), reverse=True):
            del lines[i]
        data = _join(data, lines)
    elif name == "duplicate":
        i = rng.choice(rows)
        lines.insert(i, lines[i])
        data = _join(data, lines)
    elif name == "nanrow" and text.kind == "boxes":
        for i in rng.sample(rows, rng.randint(1, len(rows))):
            lines[i] = rng.choice((b"nan,nan,nan,nan", b"NaN\tNaN\tNaN\tNaN", b"NAN NAN NAN NAN"))
        data = _join(data, lines)
    elif name == "remove":
        _outside_data(text.path).unlink()
        return f"{text.kind}:{name}", Expect("any", text.path)
    else:
        data = b""
    _replace(text.path, data)
    return f"{text.kind}:{name}", Expect("any", text.path)


def _seqfile(text: Text, rng: random.Random) -> tuple[str, Expect]:
    """Break the VOT ``sequence`` file's channels.color line, or add a line that is not key=value."""
    data = text.path.read_bytes()
    lines, rows = _rows(data)
    i = next((k for k in rows if lines[k].startswith(b"channels.color")), rows[-1])
    name = rng.choice(("pattern", "escape", "nokey"))
    if name == "nokey":
        lines[i] = b"channels.color"
    else:
        bad = b"color/%06d.jpg" if name == "pattern" else rng.choice((b"../x/%08d.jpg", b"/tmp/%08d.jpg",
                                                                        b"color/frame.jpg"))
        lines[i] = b"channels.color=" + bad
    _replace(text.path, _join(data, lines))
    return f"seqfile:{name}", Expect("error", text.path, i + 1)


def _split(tree: Tree, rng: random.Random) -> tuple[str, Expect]:
    """A bad split line inserted among good ones, or an empty / comment-only split."""
    data = tree.split.read_bytes()
    lines = _rows(data)[0]
    name = rng.choice(("bad", "bad", "bad", "duplicate", "benign", "nonutf8", "empty"))
    at = rng.randint(1, len(lines) - 1)
    if name == "empty":
        _replace(tree.split, rng.choice((b"", b"# nothing\n\n")))
        return "split:empty", Expect("error", tree.split)
    if name == "benign":
        entry = rng.choice(tree.entries)
        at = lines.index(entry.encode())
        lines[at] = rng.choice((b"./", b"  ")) + lines[at] + rng.choice((b"/", b" "))
        _replace(tree.split, _join(data, lines))
        return "split:benign", Expect("same")
    if name == "duplicate":
        line = rng.choice(tree.entries).encode()
        at = max(at, lines.index(line) + 1)
    elif name == "nonutf8":
        line = b"otb/Caf\xe9"
    else:
        line = rng.choice(BAD_SPLIT_LINES + (str(tree.root / tree.entries[0]),)).encode()
    lines.insert(at, line)
    _replace(tree.split, _join(data, lines))
    return f"split:{name}", Expect("error", tree.split, at + 1)


def _frame(tree: Tree, rng: random.Random) -> tuple[str, Expect]:
    """Delete, rename or corrupt one frame (its link replaced by a new file; the real frame is untouched)."""
    folder = rng.choice(tree.frame_dirs)
    frames = sorted(p for p in folder.iterdir() if IMAGE.search(p.name))
    frame = _outside_data(frames[0] if rng.random() < 0.3 else rng.choice(frames))
    name = rng.choice(("delete", "rename_ext", "rename_num", "zero", "truncate", "garbage"))
    if name == "delete":
        frame.unlink()
        return "frame:delete", Expect("any")
    if name.startswith("rename"):
        renamed = frame.with_name(f"99999999{frame.suffix}")
        new = frame.with_suffix(".txt") if name == "rename_ext" else renamed
        frame.rename(new)
        return f"frame:{name}", Expect("any", frame=new if name == "rename_num" else None)
    data = frame.read_bytes()
    bad = {"zero": b"", "truncate": data[:rng.randrange(1, len(data))],
           "garbage": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))}[name]
    _replace(frame, bad)
    return f"frame:{name}", Expect("any", frame=frame)


def mutate(tree: Tree, rng: random.Random) -> tuple[str, Expect]:
    """Apply one random mutation to ``tree``."""
    roll = rng.random()
    if roll < 0.06:
        return "none", Expect("same")
    if roll < 0.2:
        return _split(tree, rng)
    if tree.frame_dirs and roll < 0.32:
        return _frame(tree, rng)
    text = rng.choice([t for t in tree.texts if t.kind != "split"])
    if text.kind == "seqfile":
        return _seqfile(text, rng)
    if text.kind == "list":
        return _structural(text, rng)
    pick: Callable = rng.choices((_row_mutation, _benign, _structural), weights=(5, 2, 3))[0]
    return pick(text, rng)


# ---------------------------------------------------------------- checking


def _load(tree: Tree, how: str) -> list[Sequence]:
    if how == "find":
        return readers.find_sequences(tree.root)
    if how == "one":
        return readers.load_sequence(tree.entries[0], tree.root)
    return readers.load_sequences(tree.root, tree.split)


def _consistent(seqs: list[Sequence]) -> str | None:
    """Why ``seqs`` is not a consistent load, or None."""
    for s in seqs:
        finite = np.isfinite(s.boxes).all(axis=1)
        if not isinstance(s, Sequence) or s.boxes.dtype != np.float64 or s.boxes.shape != (len(s.frames), 4):
            return f"{s.name}: boxes {s.boxes.dtype} {s.boxes.shape} for {len(s.frames)} frames"
        if not (finite | np.isnan(s.boxes).all(axis=1)).all() or not s.valid.any():
            return f"{s.name}: rows neither finite nor all NaN, or no valid box"
        if not all(f.is_file() for f in s.frames):
            return f"{s.name}: a listed frame is not a file"
    return None


def _same(a: list[Sequence], b: list[Sequence]) -> bool:
    """The same targets, frames and boxes (in any order: a split mutation loads by split, not by walk)."""
    def key(s: Sequence) -> tuple[str, str]:
        return s.name, str(s.frames[0])

    a, b = sorted(a, key=key), sorted(b, key=key)
    return [(s.name, s.frames) for s in a] == [(s.name, s.frames) for s in b] and all(
        np.array_equal(x.boxes, y.boxes, equal_nan=True) for x, y in zip(a, b, strict=True))


def _check_error(err: SequenceError, tree: Tree, expect: Expect) -> str | None:
    """Why ``err`` is not a clean error for ``expect``, or None."""
    msg = str(err)
    culprit = re.match(r"(.+?)(?::(\d+))?: ", msg)
    if "\n" in msg or culprit is None or not culprit.group(1).startswith(str(tree.root)):
        return f"message does not start with a path in the tree: {msg!r}"
    if expect.kind == "same":
        return f"a harmless change made loading fail: {msg!r}"
    at_line = f"{expect.path}:{expect.line}: "
    if expect.kind == "error" and expect.line is not None and not msg.startswith(at_line):
        return f"expected an error at {expect.path.name}:{expect.line}, got {msg!r}"
    if expect.kind == "error" and not msg.startswith(f"{expect.path}"):
        return f"expected an error naming {expect.path.name}, got {msg!r}"
    return None


def _check_frame(seqs: list[Sequence], frame: Path | None) -> str | None:
    """A touched frame that was loaded must be read by read_frame, or fail naming it."""
    if frame is None or not any(frame in s.frames for s in seqs):
        return None
    try:
        image = readers.read_frame(frame)
    except SequenceError as err:
        return None if str(err).startswith(f"{frame}: ") and "\n" not in str(err) else f"read_frame: {err!r}"
    ok = image.ndim == 3 and image.dtype == np.uint8
    return None if ok else f"read_frame gave {image.shape} {image.dtype}"


def run_case(workdir: Path, seed: int, index: int) -> Outcome:
    """Build, mutate and load tree ``index`` of fuzz run ``seed`` in ``workdir`` (left behind for a look)."""
    rng = random.Random(f"{seed}:{index}")
    tree = build_tree(workdir, rng, deep=rng.random() < 0.25)
    how = rng.choices(("split", "find", "one"), weights=(7, 2, 1))[0]
    how = "split" if how == "one" and len(tree.entries) > 1 else how
    try:
        before = _load(tree, how)
    except SequenceError as err:
        return Outcome("FAIL", "base", f"seed {seed} tree {index}: the unmutated tree does not load: {err}")
    mutation, expect = mutate(tree, rng)
    if mutation.startswith("split:"):
        how = "split"
    label = f"seed {seed} tree {index} ({mutation}, load={how}, entries={tree.entries})"
    try:
        seqs = _load(tree, how)
    except SequenceError as err:
        why = _check_error(err, tree, expect)
        return Outcome("FAIL" if why else "error", mutation, f"{label}: {why or err}")
    except Exception as err:  # noqa: BLE001 - the fuzz reports any other exception as the failure it is
        return Outcome("FAIL", mutation, f"{label}: {type(err).__name__}: {err}")
    why = _consistent(seqs) or _check_frame(seqs, expect.frame)
    if why is None and expect.kind == "error":
        why = f"loaded although {expect.path.name}:{expect.line} is invalid"
    if why is None and expect.kind == "same" and not _same(before, seqs):
        why = "a harmless change altered what was loaded"
    return Outcome("FAIL" if why else "ok", mutation, f"{label}: {why or 'ok'}")
