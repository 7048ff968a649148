"""``--dataset`` presets: a root the user names holds one benchmark in its official layout, and the
benchmark's own sequence list picks what runs, where one is shipped.

Lists come from the benchmark's folder (GOT-10k ``val/list.txt``, VOT ``list.txt``, LaSOT
``testing_set.txt``) or from the got10k toolkit's copies (``got10k.datasets``: OTB2015's 100 names and its
frame spans, UAV123's 123 names, LaSOT's 280 test names). DTB70 ships no list: every sequence folder of
the root runs. Listed sequences missing from the root are named in one note and recorded in the report's
settings, so a partial copy is never mistaken for the full benchmark.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from backbones.cli import UsageError
from tracker.sequences import Sequence, SequenceError, load_sequence

DATASETS = ("otb2015", "uav123", "dtb70", "got10k-val", "lasot", "vot")
# OTB's frame spans where the image folder holds more frames than the annotation covers: the got10k
# toolkit's ``OTB.__getitem__`` special cases (1-based first and last frame numbers).
OTB_SPANS = {"david": (300, 770), "football1": (1, 74), "freeman3": (1, 460), "freeman4": (1, 283),
             "diving": (1, 215)}


def _toolkit_file(name: str) -> Path:
    import got10k.datasets

    return Path(got10k.datasets.__file__).parent / name


def otb2015_names() -> list[str]:
    """OTB2015 (OTB-100) sequence folder names, as the got10k toolkit lists them."""
    from got10k.datasets import OTB

    return list(OTB._OTB__otb15_seqs)  # name-mangled class attribute


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _frame_number(path: Path) -> int | None:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits) if digits else None


def otb_span(seq: Sequence) -> Sequence:
    """``seq`` cut to OTB's official frame span (David 300-770, ...); unchanged for other sequences."""
    span = OTB_SPANS.get(seq.name.lower())
    if span is None:
        return seq
    frames = [f for f in seq.frames if (n := _frame_number(Path(f))) is not None and span[0] <= n <= span[1]]
    if len(frames) == len(seq.frames):
        return seq
    # The reader maps annotation rows to the folder's images from the first one: row k is frames[k].
    return Sequence(seq.name, frames, seq.boxes[:len(frames)], seq.layout, None, seq.annotation)


def _collect(folders: Iterable[tuple[str, Path]], keep: Callable[[Sequence], bool] = lambda s: True
             ) -> tuple[list[Sequence], list[str]]:
    """The sequences of the listed folders that exist (read by ``tracker.sequences``), and the missing."""
    found, missing = [], []
    for name, folder in folders:
        if not folder.is_dir():
            missing.append(name)
            continue
        found += [s for s in load_sequence(folder) if keep(s)]
    return found, missing


def _subfolders(root: Path) -> list[tuple[str, Path]]:
    return [(p.name, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _otb2015(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    names = otb2015_names()
    seqs, missing = _collect((n, root / n) for n in names)
    return [otb_span(s) for s in seqs], missing, len(names)


def _uav_set(root: Path) -> str:
    for name in ("UAV123", "UAV123_10fps"):
        if (root / "anno" / name).is_dir() and (root / "data_seq" / name).is_dir():
            return name
    raise UsageError(f"--data {root}: not a UAV123 root (needs anno/UAV123[_10fps]/ and "
                     "data_seq/UAV123[_10fps]/)")


def _uav123(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    meta = json.loads(_toolkit_file("uav123.json").read_text(encoding="utf-8"))["UAV123"]
    which = _uav_set(root)
    listed = set(meta)
    missing = [n for n in meta if not (root / "anno" / which / f"{n}.txt").is_file()]
    folders = dict.fromkeys(meta[n]["folder_name"] for n in meta if n not in missing)
    seqs, _ = _collect(((f, root / "data_seq" / which / f) for f in folders), lambda s: s.name in listed)
    order = {n: i for i, n in enumerate(meta)}
    return sorted(seqs, key=lambda s: order[s.name]), missing, len(meta)


def _dtb70(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    folders = [(n, p) for n, p in _subfolders(root) if (p / "img").is_dir()]
    return _collect(folders)[0], [], None


def _got10k_val(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    split = root if (root / "list.txt").is_file() and root.name == "val" else root / "val"
    if not (split / "list.txt").is_file():
        raise UsageError(f"--data {root}: not a GOT-10k root (no val/list.txt)")
    names = _read_list(split / "list.txt")
    seqs, missing = _collect((n, split / n) for n in names)
    return seqs, missing, len(names)


def _lasot(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    own = root / "testing_set.txt"
    if own.is_file():
        names = _read_list(own)
    else:
        names = json.loads(_toolkit_file("lasot.json").read_text(encoding="utf-8"))["test"]
    seqs, missing = _collect((n, root / n.rsplit("-", 1)[0] / n) for n in names)
    return seqs, missing, len(names)


def _vot(root: Path) -> tuple[list[Sequence], list[str], int | None]:
    if (root / "list.txt").is_file():
        names = _read_list(root / "list.txt")
        seqs, missing = _collect((n, root / n) for n in names)
        return seqs, missing, len(names)
    folders = [(n, p) for n, p in _subfolders(root) if (p / "groundtruth.txt").is_file()]
    return _collect(folders)[0], [], None


PRESETS = {"otb2015": (_otb2015, "OTB2015", "<Seq>/img/ + groundtruth_rect.txt, e.g. Basketball/"),
           "uav123": (_uav123, "UAV123", "anno/UAV123[_10fps]/<seq>.txt + data_seq/UAV123[_10fps]/<folder>/"),
           "dtb70": (_dtb70, "DTB70", "<Seq>/img/ + groundtruth_rect.txt"),
           "got10k-val": (_got10k_val, "GOT-10k val", "val/list.txt + val/<seq>/groundtruth.txt"),
           "lasot": (_lasot, "LaSOT", "<class>/<class>-<k>/img/ + groundtruth.txt"),
           "vot": (_vot, "VOT", "[list.txt +] <seq>/groundtruth.txt + images or color/")}


def load_dataset(name: str, root: str | Path, split: str | Path | None = None) -> tuple[list[Sequence], dict]:
    """The sequences of benchmark ``name`` under ``root``, and what the report's settings record about it."""
    if split is not None:
        raise UsageError(f"--split with --dataset {name}: give one (the preset runs its official list; a "
                         "split file picks sequences without --dataset)")
    reader, title, layout = PRESETS[name]
    base = Path(root).expanduser()
    if not base.is_dir():
        raise SequenceError(f"{base}: tracking data root not found")
    try:
        seqs, missing, listed = reader(base)
    except SequenceError as err:
        raise SequenceError(f"--dataset {name}: {err}") from None
    if not seqs:
        raise UsageError(f"--data {base}: no {title} sequence found in its official layout ({layout})")
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        print(f"note: {len(missing)} of the {listed} entries of the {title} list are not under {base} "
              f"({shown}); running the {len(seqs)} sequences found", file=sys.stderr)
    valid = [s for s in seqs if np.asarray(s.valid).any()]
    return valid, {"dataset": name, "listed": listed, "missing": len(missing)}
