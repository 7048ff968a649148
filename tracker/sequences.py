"""Tracking sequence readers: OTB, DTB70, VOT, UAV123 and GOT-10k layouts side by side under one root.

Boxes are ``[x, y, w, h]`` float64 in 0-based pixel coordinates (docs/design.md section 5): the 1-based
benchmarks (OTB, DTB70, VOT, UAV123) are shifted by -1 here; unannotated frames hold NaN rows.

Bad data fails with one :class:`SequenceError` line ``PATH[:LINE]: what is wrong``. What is valid: a row
is all numbers, or all NaN (target absent, in any layout, as UAV123 and VOT-LT write it); numbers are
finite and within +-LIMIT pixels; widths and heights are >= 0 (0 = no box, as LaSOT writes it); a file
may have fewer rows than frames (the rest are unannotated, as in OTB Football1) but never more; every
sequence has a valid box, and the first one overlaps its frame.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePath

import cv2
import numpy as np
from PIL import Image

from backbones.cli import UsageError
from tracker.boxes import check_init_box

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
SUPPORTED = ("OTB/DTB70 <seq>/img/ + groundtruth_rect[.N].txt; VOT <seq>/[color/] + groundtruth.txt; "
             "UAV123 data_seq/<set>/<seq>/ + anno/<set>/<seq>[_k].txt; GOT-10k <split>/<seq>/groundtruth.txt")
LIMIT = 100_000.0  # pixels: beyond any benchmark frame, so a coordinate past it means a corrupt file
_OTB_MULTI = re.compile(r"^groundtruth_rect\.(\d+)\.txt$")
_SEPARATORS = re.compile(r"[,;\s]+")
_NEWLINES = re.compile(r"\r\n|\r|\n")  # universal newlines, as editors count lines
# GOT-10k per-frame labels: allowed values and which of them mean "target not visible".
_GOT10K_LABELS = (("absence.label", range(2), 1), ("cover.label", range(9), 0))


class SequenceError(UsageError):
    """A tracking data problem, reported as one line naming the file (and line) at fault."""


@dataclass(eq=False)
class Sequence:
    """One target in one image sequence: frame paths plus one 0-based x,y,w,h row (or NaN) per frame."""

    name: str
    frames: list[Path]
    boxes: np.ndarray
    layout: str
    absent: np.ndarray | None = field(default=None, repr=False)  # GOT-10k absence/cover flags per frame
    annotation: Path | None = field(default=None, repr=False)  # the file the boxes were read from

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.boxes) != len(self.frames):
            raise ValueError(f"{self.name}: {len(self.boxes)} boxes for {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return (f"Sequence({self.name!r}, layout={self.layout!r}, frames={len(self.frames)}, "
                f"valid={self.valid.sum()})")

    @property
    def valid(self) -> np.ndarray:
        """Bool per frame: annotated, finite, w > 0 and h > 0, and not flagged absent (GOT-10k)."""
        ok = np.isfinite(self.boxes).all(axis=1) & (self.boxes[:, 2] > 0) & (self.boxes[:, 3] > 0)
        if self.absent is not None:
            ok &= ~self.absent
        return ok


def _where(path: Path | str, lineno: int | None = None) -> str:
    """``path`` or ``path:lineno``: how every message names its culprit."""
    return f"{path}" if lineno is None else f"{path}:{lineno}"


def _short(text: str, keep: int = 60) -> str:
    """``text`` quoted, cut in the middle when long (a 5000-character split line stays one short line)."""
    if len(text) <= keep:
        return repr(text)
    return f"{text[:keep // 2]!r}...{text[-keep // 2:]!r} ({len(text)} characters)"


# ---------------------------------------------------------------- files


@contextmanager
def _os_errors(where: str) -> Iterator[None]:
    """Turn an OSError inside (unreadable, a name too long for the file system) into one line at ``where``."""
    try:
        yield
    except OSError as err:
        raise SequenceError(f"{where}: {err.strerror or err}") from None


def _read_bytes(path: Path, what: str) -> bytes:
    with _os_errors(f"{path}: cannot read {what}"):
        return path.read_bytes()


def _read_text(path: Path) -> str:
    """A text file decoded as UTF-8 (a BOM is fine); bad bytes fail naming the line they are on."""
    data = _read_bytes(path, "file").removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = len(_NEWLINES.split(data[:err.start].decode("utf-8")))
        raise SequenceError(f"{path}:{lineno}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF and a missing final newline are both fine."""
    return [(i, ln.strip()) for i, ln in enumerate(_NEWLINES.split(_read_text(path)), 1) if ln.strip()]


def _is_dir(path: Path, where: str) -> bool:
    """``path.is_dir()``, with a name the file system refuses (too long) reported as one line at ``where``."""
    with _os_errors(f"{where}: {_short(str(path))}"):
        return path.is_dir()


def _frame_bytes(path: Path) -> bytes:
    """The bytes of one image file, refusing a missing, empty or visibly truncated (JPEG without EOI) one."""
    data = _read_bytes(path, "image")
    if not data:
        raise SequenceError(f"{path}: empty image file (0 bytes)")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        # Checked here because libjpeg would print its own warning to stderr while decoding it.
        raise SequenceError(f"{path}: truncated JPEG (no end-of-image marker)")
    return data


def read_frame(path: str | Path) -> np.ndarray:
    """One frame as an OpenCV BGR uint8 array; a missing, 0-byte or undecodable file is a SequenceError."""
    data = _frame_bytes(Path(path))
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SequenceError(f"{path}: cannot decode image")
    return image


def _frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header (cheap: no pixel is decoded)."""
    try:
        with Image.open(io.BytesIO(_frame_bytes(path))) as image:
            return image.size
    except (OSError, Image.DecompressionBombError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise SequenceError(f"{path}: cannot decode image ({type(err).__name__})") from None


# ---------------------------------------------------------------- annotation rows


def _check_values(path: Path, lineno: int, line: str, parts: list[str]) -> None:
    """Fail naming the first token of a row that is no number, not finite or beyond +-LIMIT (NaN is fine)."""
    for token in parts:
        try:
            v = float(token)
        except ValueError:
            raise SequenceError(f"{path}:{lineno}: malformed annotation line {_short(line)}: "
                                f"{_short(token)} is not a number") from None
        if not (abs(v) <= LIMIT or math.isnan(v)):
            raise SequenceError(f"{path}:{lineno}: value {_short(token)} in {_short(line)} is not finite or "
                                f"beyond +-{LIMIT:.0f} pixels")


def _numbers(path: Path, lineno: int, line: str, counts: tuple[int, ...]) -> list[float]:
    """Parse one comma/tab/space separated annotation row with one of ``counts`` values, or fail naming it."""
    parts = _SEPARATORS.split(line.strip(",; \t"))
    if len(parts) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise SequenceError(f"{path}:{lineno}: malformed annotation line {_short(line)} "
                            f"(expected {want} numbers)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not all(abs(v) <= LIMIT for v in values) or not values:  # fast path for the common all-good row
        _check_values(path, lineno, line, parts)
        nans = sum(map(math.isnan, values))
        if nans < len(values):
            raise SequenceError(f"{path}:{lineno}: row {_short(line)} mixes NaN with numbers "
                                "(absent = all NaN)")
    return values


def _box(path: Path, lineno: int, line: str, values: list[float]) -> list[float]:
    """x,y,w,h of a row (VOT 8-value polygons -> their axis-aligned bounds); negative sizes are refused."""
    if len(values) == 8:
        xs, ys = values[0::2], values[1::2]
        return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    if values[2] < 0 or values[3] < 0:
        raise SequenceError(f"{path}:{lineno}: negative width or height in x,y,w,h row {_short(line)}")
    return values


def _read_boxes(path: Path, n: int, one_based: bool = True,
                polygons: bool = False) -> tuple[np.ndarray, list[int]]:
    """Boxes of ``n`` frames as 0-based float64 (n, 4), NaN past the file's end, and each row's line."""
    rows = _lines(path)
    if not rows:
        raise SequenceError(f"{path}: holds no annotation row")
    if len(rows) > n:
        raise SequenceError(f"{path}:{rows[n][0]}: row {n + 1} has no frame (the sequence has {n} images)")
    boxes = np.full((n, 4), np.nan)
    for k, (lineno, line) in enumerate(rows):
        boxes[k] = _box(path, lineno, line, _numbers(path, lineno, line, (4, 8) if polygons else (4,)))
    if one_based:
        boxes[:, :2] -= 1.0
    return boxes, [lineno for lineno, _ in rows]


def _read_flags(path: Path, n: int, allowed: range) -> np.ndarray:
    """A GOT-10k per-frame label file: one integer in ``allowed`` per frame, exactly ``n`` of them."""
    rows = _lines(path)
    flags = []
    for lineno, line in rows[:n]:
        if not re.fullmatch(r"[0-9]{1,3}", line) or int(line) not in allowed:
            raise SequenceError(f"{path}:{lineno}: label {_short(line)} is not an integer "
                                f"{allowed.start}..{allowed.stop - 1}")
        flags.append(int(line))
    if len(rows) != n:
        where = _where(path, rows[n][0] if len(rows) > n else None)
        raise SequenceError(f"{where}: {len(rows)} labels for {n} frames (GOT-10k has one per frame)")
    return np.array(flags, dtype=np.int64)


def _checked(seq: Sequence, lines: list[int]) -> Sequence:
    """``seq`` if it can be tracked: some valid box, the first of which overlaps its frame."""
    valid = np.flatnonzero(seq.valid)
    if not len(valid):
        raise SequenceError(f"{seq.annotation}: no valid box for {seq.name} (every row is NaN, "
                            "zero-sized or flagged absent)")
    k = int(valid[0])
    x, y, w, h = seq.boxes[k]
    width, height = _frame_size(seq.frames[k])
    try:
        check_init_box(seq.boxes[k], width, height)
    except ValueError:
        raise SequenceError(f"{_where(seq.annotation, lines[k])}: the first valid box of {seq.name} "
                            f"(0-based x,y,w,h {x:g},{y:g},{w:g},{h:g}) lies outside its {width}x{height} "
                            f"frame {seq.frames[k]}") from None
    return seq


def _sequence(name: str, frames: list[Path], anno: Path, layout: str, one_based: bool = True,
              polygons: bool = False, absent: np.ndarray | None = None) -> Sequence:
    """Read ``anno`` for ``frames`` and check the result (see :func:`_checked`)."""
    if not frames:
        raise SequenceError(f"{anno}: no images found for this {layout} sequence")
    boxes, lines = _read_boxes(anno, len(frames), one_based, polygons)
    return _checked(Sequence(name, frames, boxes, layout, absent, anno), lines)


# ---------------------------------------------------------------- layouts


def _frame_key(name: str) -> tuple[int, str]:
    """Sort frames by their number when the stem is numeric (so 999 < 1000), else by name."""
    stem = os.path.splitext(name)[0]
    return (int(stem) if stem.isdigit() else -1, name)


def _images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in frame order; [] when the folder does not exist."""
    if not folder.is_dir():
        return []
    with _os_errors(f"{folder}: cannot list images"), os.scandir(folder) as it:
        names = [e.name for e in it if os.path.splitext(e.name)[1].lower() in IMAGE_EXTS and e.is_file()]
    return [folder / name for name in sorted(names, key=_frame_key)]


def _otb(folder: Path) -> list[Sequence]:
    """OTB / DTB70: img/ + groundtruth_rect.txt, or one groundtruth_rect.<k>.txt per target (Jogging)."""
    multi = sorted((int(m.group(1)), folder / m.group(0))
                   for m in (_OTB_MULTI.match(p.name) for p in folder.iterdir()) if m)
    # When numbered files exist a plain groundtruth_rect.txt is conventionally a copy of .1: use the numbered.
    annos = [(f"{folder.name}.{k}", p) for k, p in multi] or [(folder.name, folder / "groundtruth_rect.txt")]
    frames = _images(folder / "img")
    dtb = any(p.lower() == "dtb70" for p in folder.parts) or (bool(frames) and len(frames[0].stem) == 5)
    # Rows map to the sorted image files from the first one present (an OTB folder starting at 0300.jpg).
    return [_sequence(name, frames, path, "dtb70" if dtb else "otb") for name, path in annos]


def _is_got10k(folder: Path) -> bool:
    """GOT-10k folders carry per-frame labels / meta_info.ini, or are listed in their split's list.txt."""
    if any((folder / f).is_file() for f in ("absence.label", "cover.label", "meta_info.ini")):
        return True
    return folder.name in _split_list(folder.parent)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of a file, or None when it is not one: the key that lets a cache see edits."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if stat.S_ISREG(st.st_mode) else None


@lru_cache(maxsize=64)
def _list_names(path: Path, stamp: tuple[int, int]) -> frozenset[str]:
    """The lines of a list.txt as of ``stamp`` (read once per version: every folder of a split asks)."""
    return frozenset(ln for _, ln in _lines(path))


def _split_list(split_dir: Path) -> frozenset[str]:
    """Sequence folder names in a GOT-10k split's list.txt (empty when there is none)."""
    path = split_dir / "list.txt"
    stamp = _stamp(path)
    return _list_names(path, stamp) if stamp else frozenset()


def _frame_pattern(seq_file: Path, lineno: int, value: str) -> tuple[Path, re.Pattern]:
    """Folder and file-name regex of a VOT ``channels.color=color/%08d.jpg`` entry, kept inside the folder."""
    rel = PurePath(value)
    m = re.fullmatch(r"(.*)%(0(\d{1,2}))?d(.*)", rel.name)
    if rel.is_absolute() or ".." in rel.parts or m is None:
        raise SequenceError(f"{seq_file}:{lineno}: channels.color {_short(value)} is not a frame pattern "
                            "inside the sequence folder (like color/%08d.jpg)")
    digits = rf"\d{{{int(m.group(3))}}}" if m.group(3) else r"\d+"
    return seq_file.parent / rel.parent, re.compile(re.escape(m.group(1)) + digits + re.escape(m.group(4)))


def _vot_frames(folder: Path) -> list[Path]:
    """VOT frames: as the toolkit's ``sequence`` file's channels.color says, else in the folder or color/."""
    seq_file = folder / "sequence"
    if not seq_file.is_file():
        return _images(folder) or _images(folder / "color")
    color = None
    for lineno, line in _lines(seq_file):
        key, sep, value = line.partition("=")
        if not sep:
            raise SequenceError(f"{seq_file}:{lineno}: expected key=value, got {_short(line)}")
        if key.strip() == "channels.color":
            color = lineno, value.strip()
    if color is None:
        return _images(folder) or _images(folder / "color")
    where, pattern = _frame_pattern(seq_file, *color)
    frames = [f for f in _images(where) if pattern.fullmatch(f.name)]
    if not frames:
        raise SequenceError(f"{seq_file}:{color[0]}: no image in {where} matches channels.color "
                            f"{_short(color[1])}")
    return frames


def _vot_or_got10k(folder: Path) -> list[Sequence]:
    """VOT: groundtruth.txt of polygons or boxes, images in the folder or color/; GOT-10k: 0-based boxes."""
    gt = folder / "groundtruth.txt"
    if not _is_got10k(folder):
        return [_sequence(folder.name, _vot_frames(folder), gt, "vot", polygons=True)]
    # GOT-10k boxes are used as-is (0-based): the got10k toolkit applies no offset to them.
    frames = _images(folder)
    absent = np.zeros(len(frames), dtype=bool)
    for label, allowed, hidden in _GOT10K_LABELS:
        if frames and (folder / label).is_file():  # (no frames: _sequence says so)
            absent |= _read_flags(folder / label, len(frames), allowed) == hidden
    return [_sequence(folder.name, frames, gt, "got10k", one_based=False, absent=absent)]


def _uav_annos(folder: Path) -> list[Path]:
    """UAV123 annotations of an image folder: anno/<set>/<folder>.txt and/or <folder>_<k>.txt."""
    data_seq = folder.parent.parent
    pattern = re.compile(rf"^{re.escape(folder.name)}(_\d+)?\.txt$")
    for anno_dir in (data_seq.parent / "anno" / folder.parent.name, data_seq.parent / "anno"):
        if anno_dir.is_dir():
            found = [p for p in anno_dir.iterdir() if pattern.match(p.name) and p.is_file()]
            found.sort(key=lambda p: 0 if p.stem == folder.name else int(p.stem.rsplit("_", 1)[1]))
            if found:
                return found
    return []


_ConfigEntry = tuple[str, tuple[str, ...], int, int]


@lru_cache(maxsize=16)
def _parse_config(path: Path, stamp: tuple[int, int] | None) -> tuple[_ConfigEntry, ...]:
    """(name, path parts, startFrame, endFrame) of every struct in a UAV123 configSeqs.m (as of ``stamp``)."""
    text = _read_text(path)
    entries = []
    for m in re.finditer(r"'name'\s*,\s*'([^']+)'([^)]*)\)", text):
        body = m.group(2)
        start = re.search(r"'startFrame'\s*,\s*(\d{1,9})\b", body)
        end = re.search(r"'endFrame'\s*,\s*(\d{1,9})\b", body)
        where = re.search(r"'path'\s*,\s*'([^']*)'", body)
        if start and end:
            parts = tuple(p for p in re.split(r"[\\/]", where.group(1) if where else "") if p)
            entries.append((m.group(1), parts, int(start.group(1)), int(end.group(1))))
    return tuple(entries)


def _uav_range(folder: Path, name: str, root: Path | None) -> tuple[int, int] | None:
    """startFrame/endFrame of sub-sequence ``name`` from a configSeqs*.m beside the UAV123 trees, if any."""
    base = folder.parent.parent.parent
    dirs = [base / "anno" / folder.parent.name, base / "anno", base]
    stop = root.resolve() if root is not None else None
    for d in base.resolve().parents:
        if stop is None or not d.is_relative_to(stop):
            break
        dirs.append(d)
    matches = []
    for d in dirs:
        for cfg in sorted(d.glob("configSeqs*.m")) if d.is_dir() else []:
            for ename, parts, start, end in _parse_config(cfg, _stamp(cfg)):
                if ename == name and (not parts or folder.name in parts):
                    matches.append((folder.parent.name in parts, start, end))
    if not matches:
        return None
    best = max(matches, key=lambda m: m[0])  # prefer the entry whose path names this set (UAV123_10fps)
    return best[1], best[2]


def _uav123(folder: Path, root: Path | None) -> list[Sequence]:
    """UAV123: images in data_seq/<set>/<folder>/, one annotation per (sub-)sequence in anno/<set>/."""
    frames = _images(folder)
    annos = _uav_annos(folder)
    out = []
    for anno in annos:
        span = _uav_range(folder, anno.stem, root)
        picked = [f for f in frames if f.stem.isdigit() and span[0] <= int(f.stem) <= span[1]] if span else []
        if not picked:
            if len(annos) > 1:
                raise SequenceError(f"{anno}: {folder} holds {len(annos)} sub-sequences; a configSeqs.m "
                                    f"giving {anno.stem}'s startFrame/endFrame is needed to pick its frames")
            picked = frames  # the folder holds exactly this (sub-)sequence, e.g. group1 = 001309..001625
        out.append(_sequence(anno.stem, picked, anno, "uav123"))
    return out


def _layout(folder: Path) -> str | None:
    """Which reader handles ``folder`` ('otb' covers DTB70, 'vot' covers GOT-10k), or None."""
    numbered = (_OTB_MULTI.match(p.name) for p in folder.glob("groundtruth_rect.*.txt"))
    if (folder / "img").is_dir() and ((folder / "groundtruth_rect.txt").is_file() or any(numbered)):
        return "otb"
    if (folder / "groundtruth.txt").is_file():
        return "vot"
    if folder.parent.parent.name == "data_seq" and _uav_annos(folder):
        return "uav123"
    return None


def _read(folder: Path, root: Path | None) -> list[Sequence]:
    """All targets of one sequence folder ([] when the folder is not a sequence)."""
    kind = _layout(folder)
    if kind is None:
        return []
    if kind == "otb":
        return _otb(folder)
    return _vot_or_got10k(folder) if kind == "vot" else _uav123(folder, root)


# ---------------------------------------------------------------- public API


def _root(root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not _is_dir(path, "tracking data root"):
        raise SequenceError(f"{path}: tracking data root not found")
    return path


def find_sequences(root: str | Path) -> list[Sequence]:
    """Every sequence (every target) found recursively under ``root`` (links followed), in path order."""
    base = _root(root)
    found: list[Sequence] = []
    seen: set[tuple[int, int]] = set()  # folders linked in (a data root often links its datasets) only once
    for dirpath, dirnames, _ in os.walk(base, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        folder = Path(dirpath)
        seqs = _read(folder, base)
        if seqs:
            dirnames[:] = []  # img/, color/ and frames belong to this sequence
            listed = _split_list(folder.parent)
            found += [s for s in seqs if s.layout != "got10k" or not listed or folder.name in listed]
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    if not found:
        raise SequenceError(f"{base}: no tracking sequence found (supported layouts: {SUPPORTED})")
    return found


def load_sequence(path: str | Path, root: str | Path | None = None) -> list[Sequence]:
    """The target(s) of one sequence folder (``path`` relative to ``root`` when given), e.g. Jogging -> 2."""
    base = _root(root) if root is not None else None
    folder = Path(path) if base is None else base / path
    if not _is_dir(folder, "sequence folder"):
        raise SequenceError(f"{folder}: sequence folder not found")
    seqs = _read(folder, base)
    if not seqs:
        raise SequenceError(f"{folder}: not a tracking sequence folder (supported layouts: {SUPPORTED})")
    return seqs


def _target(base: Path, entry: str, where: str) -> list[Sequence]:
    """Resolve a split entry naming one target, not a folder: 'otb/Jogging.2', 'uav123/.../group1_4'."""
    entry_path = base / entry
    for folder in (entry_path.with_name(entry_path.name.rsplit(".", 1)[0]),
                   entry_path.with_name(re.sub(r"_\d+$", "", entry_path.name))):
        if folder != entry_path and _is_dir(folder, where):
            picked = [s for s in _read(folder, base) if s.name == entry_path.name]
            if picked:
                return picked
    return []


def _entry(base: Path, entry: str, where: str) -> list[Sequence]:
    """The target(s) a split line names: a path relative to the root, inside it and not hidden."""
    rel = PurePath(entry)
    if "\0" in entry or rel.is_absolute() or ".." in rel.parts:
        raise SequenceError(f"{where}: entry {_short(entry)} must be a path inside the data root {base}")
    if not rel.parts or any(part.startswith(".") for part in rel.parts):
        raise SequenceError(f"{where}: entry {_short(entry)} names a hidden or empty path")
    folder = base / rel
    seqs = _read(folder, base) if _is_dir(folder, where) else _target(base, str(rel), where)
    if not seqs:
        raise SequenceError(f"{where}: entry {_short(entry)} names no sequence under {base}")
    return seqs


def _split_file(base: Path, split: str | Path) -> Path:
    """The split file ``split`` names: a path, or a name under ``<root>/`` or ``<root>/splits/[.txt]``."""
    name = str(split)
    for candidate in (Path(split), base / name, base / "splits" / name, base / "splits" / f"{name}.txt"):
        with _os_errors(f"split file {_short(name)}"):
            if candidate.is_file():
                return candidate
    raise SequenceError(f"split file not found: {_short(name)} (also looked in {base / 'splits'})")


def load_sequences(root: str | Path, split: str | Path | None = None) -> list[Sequence]:
    """Sequences of a split file (one path per line, relative to ``root``; # comments), or all under root.

    A split must list at least one sequence and none twice (``otb/Jogging`` and ``otb/Jogging.1`` overlap).
    """
    base = _root(root)
    if split is None:
        return find_sequences(base)
    split_file = _split_file(base, split)
    out: list[Sequence] = []
    seen: dict[tuple[str, Path], int] = {}
    for lineno, line in _lines(split_file):
        if line.startswith("#"):
            continue
        for seq in _entry(base, line, _where(split_file, lineno)):
            first = seen.setdefault((seq.name, seq.frames[0]), lineno)
            if first != lineno:
                raise SequenceError(f"{split_file}:{lineno}: {seq.name} is already listed at line {first}")
            out.append(seq)
    if not out:
        raise SequenceError(f"{split_file}: lists no sequence")
    return out


HELD_OUT_EVERY = 8  # one train sequence in 8 (by name) is held out: MixBin's probes, the confidence calibration


def split_held_out(sequences: list[Sequence]) -> tuple[list[Sequence], list[Sequence]]:
    """(held_out, fit): every HELD_OUT_EVERY-th sequence by name (at least one) and the others.

    Sequence-disjoint, and the same whatever the seed: MixBin's selection probes and the tracker's
    confidence calibration use the held-out ones, which ``tracker.train --hold-out`` never trains on.
    """
    if len(sequences) < 2:
        raise UsageError(f"holding out sequences needs at least 2 train sequences (one held out for the "
                         f"selection probes and calibration), got {len(sequences)}")
    ordered = sorted(sequences, key=lambda seq: seq.name)
    held_out = ordered[HELD_OUT_EVERY // 2::HELD_OUT_EVERY] or ordered[:1]
    chosen = {id(seq) for seq in held_out}
    return held_out, [seq for seq in ordered if id(seq) not in chosen]
