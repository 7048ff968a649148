"""Tracking sequence readers: OTB, DTB70, VOT, UAV123 and GOT-10k layouts side by side under one root.

Boxes are ``[x, y, w, h]`` float64 in 0-based pixel coordinates (DESIGN.md section 5): the 1-based
benchmarks (OTB, DTB70, VOT, UAV123) are shifted by -1 here; unannotated frames hold NaN rows.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from backbones.cli import UsageError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
SUPPORTED = ("OTB/DTB70 <seq>/img/ + groundtruth_rect[.N].txt; VOT <seq>/[color/] + groundtruth.txt; "
             "UAV123 data_seq/<set>/<seq>/ + anno/<set>/<seq>[_k].txt; GOT-10k <split>/<seq>/groundtruth.txt")
_OTB_MULTI = re.compile(r"^groundtruth_rect\.(\d+)\.txt$")
_SEPARATORS = re.compile(r"[,;\s]+")


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

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.boxes) != len(self.frames):
            raise ValueError(f"{self.name}: {len(self.boxes)} boxes for {len(self.frames)} frames")

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"Sequence({self.name!r}, layout={self.layout!r}, frames={len(self.frames)}, valid={self.valid.sum()})"

    @property
    def valid(self) -> np.ndarray:
        """Bool per frame: annotated, finite, w > 0 and h > 0, and not flagged absent (GOT-10k)."""
        ok = np.isfinite(self.boxes).all(axis=1) & (self.boxes[:, 2] > 0) & (self.boxes[:, 3] > 0)
        if self.absent is not None:
            ok &= ~self.absent
        return ok


# ---------------------------------------------------------------- parsing helpers


def _frame_key(path: Path) -> tuple[int, str]:
    """Sort frames by their number when the stem is numeric (so 999 < 1000), else by name."""
    return (int(path.stem) if path.stem.isdigit() else -1, path.name)


def _images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in frame order; [] when the folder does not exist."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        found = [Path(e.path) for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTS]
    return sorted(found, key=_frame_key)


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF and a missing final newline are both fine."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise SequenceError(f"cannot read {path}: {err.strerror or err}") from None
    return [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def _numbers(path: Path, lineno: int, line: str, counts: tuple[int, ...]) -> list[float]:
    """Parse one comma/tab/space separated annotation row with one of ``counts`` values, or fail naming it."""
    parts = _SEPARATORS.split(line.strip(",; \t"))
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise SequenceError(f"{path}:{lineno}: malformed annotation line {line!r} (expected {want} numbers)")
    return values


def _read_boxes(path: Path, one_based: bool = True, polygons: bool = False) -> np.ndarray:
    """Read x,y,w,h rows (or VOT 8-value polygons -> axis-aligned boxes) as 0-based float64 (n, 4)."""
    rows = []
    for lineno, line in _lines(path):
        v = _numbers(path, lineno, line, (4, 8) if polygons else (4,))
        if len(v) == 8:
            xs, ys = v[0::2], v[1::2]
            v = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        rows.append(v)
    boxes = np.array(rows, dtype=np.float64).reshape(-1, 4)
    if one_based:
        boxes[:, :2] -= 1.0
    return boxes


def _read_flags(path: Path) -> np.ndarray:
    """Read a GOT-10k per-frame label file (one integer per line) as an int array."""
    return np.array([int(_numbers(path, n, ln, (1,))[0]) for n, ln in _lines(path)], dtype=np.int64)


def _fit(boxes: np.ndarray, n: int) -> np.ndarray:
    """Pad with NaN rows (annotation shorter than the frames, e.g. Football1) or cut to ``n`` rows."""
    out = np.full((n, 4), np.nan)
    m = min(n, len(boxes))
    out[:m] = boxes[:m]
    return out


# ---------------------------------------------------------------- layouts


def _otb(folder: Path) -> list[Sequence]:
    """OTB / DTB70: img/ + groundtruth_rect.txt, or one groundtruth_rect.<k>.txt per target (Jogging)."""
    multi = sorted((int(m.group(1)), folder / m.group(0))
                   for m in (_OTB_MULTI.match(p.name) for p in folder.iterdir()) if m)
    # When numbered files exist a plain groundtruth_rect.txt is conventionally a copy of .1: use the numbered.
    annos = [(f"{folder.name}.{k}", p) for k, p in multi] or [(folder.name, folder / "groundtruth_rect.txt")]
    frames = _images(folder / "img")
    dtb = any(p.lower() == "dtb70" for p in folder.parts) or (bool(frames) and len(frames[0].stem) == 5)
    # Rows map to the sorted image files from the first one present (an OTB folder starting at 0300.jpg).
    return [Sequence(name, frames, _fit(_read_boxes(path), len(frames)), "dtb70" if dtb else "otb")
            for name, path in annos]


def _is_got10k(folder: Path) -> bool:
    """GOT-10k folders carry per-frame labels / meta_info.ini, or are listed in their split's list.txt."""
    if any((folder / f).is_file() for f in ("absence.label", "cover.label", "meta_info.ini")):
        return True
    return folder.name in _split_list(folder.parent)


@lru_cache(maxsize=64)
def _split_list(split_dir: Path) -> frozenset[str]:
    """Sequence folder names in a GOT-10k split's list.txt (empty when there is none)."""
    path = split_dir / "list.txt"
    return frozenset(ln for _, ln in _lines(path)) if path.is_file() else frozenset()


def _vot_or_got10k(folder: Path) -> list[Sequence]:
    """VOT: groundtruth.txt of polygons or boxes, images in the folder or color/; GOT-10k: 0-based boxes."""
    frames = _images(folder) or _images(folder / "color")
    gt = folder / "groundtruth.txt"
    if not _is_got10k(folder):
        return [Sequence(folder.name, frames, _fit(_read_boxes(gt, polygons=True), len(frames)), "vot")]
    # GOT-10k boxes are used as-is (0-based): the got10k toolkit applies no offset to them.
    absent = np.zeros(len(frames), dtype=bool)
    for label, is_absent in (("absence.label", lambda f: f == 1), ("cover.label", lambda f: f == 0)):
        if (folder / label).is_file():
            flags = _read_flags(folder / label)[: len(frames)]
            absent[: len(flags)] |= is_absent(flags)
    return [Sequence(folder.name, frames, _fit(_read_boxes(gt, one_based=False), len(frames)), "got10k", absent)]


def _uav_annos(folder: Path) -> list[Path]:
    """UAV123 annotations of an image folder: anno/<set>/<folder>.txt and/or <folder>_<k>.txt."""
    data_seq = folder.parent.parent
    pattern = re.compile(rf"^{re.escape(folder.name)}(_\d+)?\.txt$")
    for anno_dir in (data_seq.parent / "anno" / folder.parent.name, data_seq.parent / "anno"):
        if anno_dir.is_dir():
            found = [p for p in anno_dir.iterdir() if pattern.match(p.name)]
            found.sort(key=lambda p: 0 if p.stem == folder.name else int(p.stem.rsplit("_", 1)[1]))
            if found:
                return found
    return []


@lru_cache(maxsize=16)
def _parse_config(path: Path) -> tuple[tuple[str, tuple[str, ...], int, int], ...]:
    """(name, path parts, startFrame, endFrame) of every struct in a UAV123 configSeqs.m."""
    text = path.read_text(encoding="utf-8", errors="replace")
    entries = []
    for m in re.finditer(r"'name'\s*,\s*'([^']+)'([^)]*)\)", text):
        body = m.group(2)
        start = re.search(r"'startFrame'\s*,\s*(\d+)", body)
        end = re.search(r"'endFrame'\s*,\s*(\d+)", body)
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
            for ename, parts, start, end in _parse_config(cfg):
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
                raise SequenceError(f"{anno}: {folder} holds {len(annos)} sub-sequences; a configSeqs.m giving "
                                    f"{anno.stem}'s startFrame/endFrame is needed to pick its frames")
            picked = frames  # the folder holds exactly this (sub-)sequence, e.g. group1 = 001309..001625
        out.append(Sequence(anno.stem, picked, _fit(_read_boxes(anno), len(picked)), "uav123"))
    return out


def _layout(folder: Path) -> str | None:
    """Which reader handles ``folder`` ('otb' covers DTB70, 'vot' covers GOT-10k), or None."""
    if (folder / "img").is_dir() and ((folder / "groundtruth_rect.txt").is_file()
                                      or any(_OTB_MULTI.match(p.name) for p in folder.glob("groundtruth_rect.*.txt"))):
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
    seqs = _otb(folder) if kind == "otb" else _vot_or_got10k(folder) if kind == "vot" else _uav123(folder, root)
    if any(not s.frames for s in seqs):
        raise SequenceError(f"no images found for the {seqs[0].layout} sequence {folder}")
    return seqs


# ---------------------------------------------------------------- public API


def _root(root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise SequenceError(f"tracking data root not found: {path}")
    return path


def find_sequences(root: str | Path) -> list[Sequence]:
    """Every sequence (every target) found recursively under ``root``, in path order, any supported layout."""
    base = _root(root)
    found: list[Sequence] = []
    for dirpath, dirnames, _ in os.walk(base):
        folder = Path(dirpath)
        seqs = _read(folder, base)
        if seqs:
            dirnames[:] = []  # img/, color/ and frames belong to this sequence
            listed = _split_list(folder.parent)
            found += [s for s in seqs if s.layout != "got10k" or not listed or folder.name in listed]
        else:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    if not found:
        raise SequenceError(f"no tracking sequence found under {base} (supported layouts: {SUPPORTED})")
    return found


def load_sequence(path: str | Path, root: str | Path | None = None) -> list[Sequence]:
    """The target(s) of one sequence folder (``path`` relative to ``root`` when given), e.g. Jogging -> 2."""
    base = _root(root) if root is not None else None
    folder = Path(path) if base is None else base / path
    if not folder.is_dir():
        raise SequenceError(f"sequence folder not found: {folder}")
    seqs = _read(folder, base)
    if not seqs:
        raise SequenceError(f"not a tracking sequence folder: {folder} (supported layouts: {SUPPORTED})")
    return seqs


def _target(base: Path, entry: str) -> list[Sequence]:
    """Resolve a split entry naming one target rather than a folder: 'otb/Jogging.2', 'uav123/.../group1_4'."""
    entry_path = base / entry
    for folder in (entry_path.with_name(entry_path.name.rsplit(".", 1)[0]),
                   entry_path.with_name(re.sub(r"_\d+$", "", entry_path.name))):
        if folder != entry_path and folder.is_dir():
            picked = [s for s in _read(folder, base) if s.name == entry_path.name]
            if picked:
                return picked
    return []


def load_sequences(root: str | Path, split: str | Path | None = None) -> list[Sequence]:
    """Sequences of a split file (one path per line, relative to ``root``; # comments), or all under root."""
    base = _root(root)
    if split is None:
        return find_sequences(base)
    name = str(split)
    candidates = [Path(split), base / name, base / "splits" / name, base / "splits" / f"{name}.txt"]
    split_file = next((c for c in candidates if c.is_file()), None)
    if split_file is None:
        raise SequenceError(f"split file not found: {split} (also looked in {base / 'splits'})")
    out: list[Sequence] = []
    for lineno, line in _lines(split_file):
        if line.startswith("#"):
            continue
        folder = base / line
        seqs = _read(folder, base) if folder.is_dir() else _target(base, line)
        if not seqs:
            raise SequenceError(f"{split_file}:{lineno}: entry {line!r} names no sequence under {base}")
        out += seqs
    return out
