"""A benchmark report directory in a resumable state: its settings, and one record per finished pair.

``--out`` holds ``settings.json`` (what the run is: code version, trackers, sequences, frame limit) from
the start, and ``finished/<tracker>/<seq>.json`` once that (tracker, sequence) pair is tracked and its
results files are written (each file atomically, the record last). A rerun of the same command tracks
only the pairs without a record; a report made with other settings is refused naming what differs
(``force`` starts it over).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from backbones.cli import UsageError, atomic_write_text, code_version, remove_stale_temporaries

SETTINGS = "settings.json"
FINISHED = "finished"
FORMAT = 1  # bump when the layout of a finished record changes: older reports are then refused
# Everything the benchmark writes into a report (--force removes these, and only these).
OWNED = (SETTINGS, FINISHED, "results", "data", "thumbs", "summary.json", "table.txt", "success_plots.png",
         "precision_plots.png", "index.html")


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (a checkpoint): the same name with other weights is another tracker."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sequence_digest(seq: object) -> str:
    """A short fingerprint of a sequence's frame files (names) and ground truth (values, validity)."""
    digest = hashlib.sha256()
    for frame in seq.frames:
        digest.update(Path(frame).name.encode() + b"\0")
    digest.update(np.ascontiguousarray(seq.boxes, dtype=np.float64).tobytes())
    digest.update(np.asarray(seq.valid, dtype=bool).tobytes())
    return digest.hexdigest()[:16]


def run_settings(trackers: Mapping[str, dict], sequences: Iterable, max_frames: int | None,
                 extra: Mapping | None = None) -> dict:
    """The settings a report's figures depend on (``trackers`` maps names to their descriptions)."""
    return {"format": FORMAT, "code_version": code_version(), "max_frames": max_frames,
            "trackers": {name: dict(desc) for name, desc in trackers.items()},
            "sequences": {s.name: {"frames": len(s.frames), "digest": sequence_digest(s)} for s in sequences},
            **dict(extra or {})}


def _names(keys: Iterable[str], limit: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _mapping_difference(what: str, old: Mapping, new: Mapping) -> str | None:
    """What differs between two name -> description mappings, in a few words."""
    gone, added = set(old) - set(new), set(new) - set(old)
    if gone or added:
        parts = ([f"{_names(added)} not there"] if added else []) + ([f"{_names(gone)} not given now"]
                                                                     if gone else [])
        return f"{what}: " + "; ".join(parts)
    changed = [k for k in new if old[k] != new[k]]
    if changed:
        key = changed[0]
        fields = sorted(f for f in set(old[key]) | set(new[key]) if old[key].get(f) != new[key].get(f))
        return f"{what} {_names(changed)} differ ({key}: {', '.join(fields)})"
    return None


def settings_difference(old: Mapping, new: Mapping) -> str | None:
    """One phrase saying how ``old`` settings differ from ``new`` ones, or None when they are the same."""
    for key in ("format", "code_version", "max_frames"):
        if old.get(key) != new.get(key):
            return f"{key} {old.get(key)!r} there, {new.get(key)!r} now"
    for key in ("trackers", "sequences"):
        found = _mapping_difference(key, old.get(key) or {}, new.get(key) or {})
        if found:
            return found
    extra = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if extra:
        return f"{extra[0]} {old.get(extra[0])!r} there, {new.get(extra[0])!r} now"
    return None


def read_settings(out: Path) -> dict | None:
    """The settings recorded in a report folder, or None when it has none."""
    path = out / SETTINGS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}; rerun with --force to start over") from None


def clear_report(out: Path) -> None:
    """Remove what the benchmark wrote into ``out`` (anything else there stays)."""
    for name in OWNED:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def prepare_report(out: Path, settings: dict, force: bool = False) -> None:
    """Make ``out`` a report folder of ``settings``: new, resumed (same settings) or, with ``force``, cleared.

    A report of other settings, or one without settings (an older eval.benchmark), is a UsageError naming
    the difference: it is never merged silently.
    """
    remove_stale_temporaries(out)
    old = read_settings(out) if out.is_dir() else None
    has_report = out.is_dir() and any((out / name).exists() for name in OWNED)
    if has_report and not force:
        why = "it has no settings.json (an older eval.benchmark)" if old is None else \
            settings_difference(old, settings)
        if why is not None:
            raise UsageError(f"--out {out} holds a report of other settings ({why}); rerun with --force to "
                             "start over, or choose another --out")
    if force and has_report:
        clear_report(out)
    out.mkdir(parents=True, exist_ok=True)
    if force or old is None or read_settings(out) != settings:
        atomic_write_text(out / SETTINGS, json.dumps(settings, indent=2) + "\n")


def discard_unstarted(out: Path) -> None:
    """Remove a report folder this run created when it failed before finishing any pair: a run stopped
    that early (a checkpoint that does not load, Ctrl-C at once) leaves nothing behind."""
    if any(not p.name.startswith(".") for p in (out / FINISHED).rglob("*.json")):
        return
    clear_report(out)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def record_path(out: Path, tracker: str, seq_name: str) -> Path:
    return out / FINISHED / tracker / f"{seq_name}.json"


def write_record(out: Path, tracker: str, seq_name: str, record: dict) -> None:
    """Mark the pair finished (after its results files are written): its figures, timings, attributes."""
    atomic_write_text(record_path(out, tracker, seq_name), json.dumps(record, indent=1) + "\n")


def read_record(out: Path, tracker: str, seq_name: str) -> dict | None:
    """The finished record of a pair, or None when the pair still has to be tracked."""
    path = record_path(out, tracker, seq_name)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and "metrics" in record else None
