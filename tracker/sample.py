"""The built-in sample sequence: a first run, a benchmark smoke test and a training clip without any data.

``make_sample(seed)`` returns its frames and exact ground truth in memory (the scene: ``tracker.synth``).
``ensure_sample(seed)`` gives it as an OTB-layout folder (``img/0001.jpg`` ... + ``groundtruth_rect.txt``,
1-based, comma separated) cached under ``$XDG_CACHE_HOME/b2track/`` (default ``~/.cache/b2track``),
so readers, the benchmark and training use it like any sequence; ``load_sample(seed)`` reads it back as a
``tracker.sequences.Sequence``. A cached copy that is missing, of another generator version, or corrupt
(every file is checked against the SHA-256 its manifest ``sample.json`` records) is rebuilt quietly. It is
built in a temporary folder renamed into place, under a lock, so concurrent runs never see a partial one::

    python -m tracker.sample                 # build (or find) the cached sample and print its folder
    python -m tracker.sample --out DIR       # write it to DIR/sample_s0 (then --data DIR reads it)
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from backbones.cli import ArgumentParser, UsageError, add_seed_arg, positive_int, run_cli
from tracker.synth import (
    DEFAULT_SEED,
    FRAMES,
    GENERATOR_VERSION,
    HEIGHT,
    WIDTH,
    ellipse_boxes,
    generate,
    make_plan,
    make_scene,
    render,
)

if TYPE_CHECKING:
    from tracker.sequences import Sequence

MANIFEST = "sample.json"
GROUNDTRUTH = "groundtruth_rect.txt"
JPEG_QUALITY = 92
MAX_FRAMES = 9999  # frame names have four digits, as in OTB
STALE_TMP_SECONDS = 3600  # temporary folders older than this were left by a killed build


def make_sample(seed: int = DEFAULT_SEED, frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, 360, 640, 3) uint8 BGR and ground-truth boxes (n, 4), 0-based x, y, w, h."""
    sample = generate(seed, frames)
    return sample.frames, sample.boxes


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/b2track`` (if absolute, as the XDG spec says), else ~/.cache/b2track."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "b2track"


def sample_name(seed: int = DEFAULT_SEED, frames: int = FRAMES) -> str:
    """The folder (and sequence) name: ``sample_s<seed>``, with ``_n<frames>`` for a shortened one."""
    return f"sample_s{seed}" + ("" if frames == FRAMES else f"_n{frames}")


# ---------------------------------------------------------------- writing and checking one folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_folder(folder: Path, seed: int, frames: int) -> None:
    """Render the sample into the empty ``folder`` in OTB layout, the manifest last."""
    plan = make_plan(seed, frames)
    (folder / "img").mkdir()
    files, hidden = {}, []
    for i, (frame, occluded) in enumerate(render(make_scene(seed, plan), plan), start=1):
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"OpenCV could not encode frame {i} as JPEG")
        rel = f"img/{i:04d}.jpg"
        (folder / rel).write_bytes(jpeg.tobytes())
        files[rel] = hashlib.sha256(jpeg.tobytes()).hexdigest()
        hidden.append(round(occluded, 4))
    one_based = ellipse_boxes(plan.target) + np.array([1.0, 1.0, 0.0, 0.0])
    np.savetxt(folder / GROUNDTRUTH, one_based, fmt="%.3f", delimiter=",")
    files[GROUNDTRUTH] = _sha256(folder / GROUNDTRUTH)
    manifest = {"generator": GENERATOR_VERSION, "seed": seed, "frames": frames, "size": [WIDTH, HEIGHT],
                "jpeg_quality": JPEG_QUALITY, "occlusion": hidden, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)  # mkdtemp made it private; the finished sample reads like any folder


def is_valid(folder: Path, seed: int = DEFAULT_SEED, frames: int = FRAMES) -> bool:
    """Whether ``folder`` holds this generator version's sample for (seed, frames), every file intact."""
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = meta["files"]
        expected = {f"img/{i:04d}.jpg" for i in range(1, frames + 1)} | {GROUNDTRUTH}
        if (meta["generator"], meta["seed"], meta["frames"]) != (GENERATOR_VERSION, seed, frames) \
                or set(files) != expected:
            return False
        if {f"img/{p.name}" for p in (folder / "img").iterdir()} != expected - {GROUNDTRUTH}:
            return False  # an extra image would become a frame of the sequence
        return all(_sha256(folder / rel) == digest for rel, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


# ---------------------------------------------------------------- building into place, safely


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX flock); without fcntl the renames alone keep it safe."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; a concurrent build then only costs time
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_tmp(parent: Path, name: str) -> None:
    """Delete temporary folders of ``name`` that a killed build left behind (older than an hour)."""
    for tmp in parent.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, final: Path, seed: int, frames: int) -> None:
    """Rename the finished ``tmp`` onto ``final``: a valid ``final`` wins, a bad one goes."""
    try:
        os.rename(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    if is_valid(final, seed, frames):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.rename(final, trash / "old")
    os.rename(tmp, final)
    shutil.rmtree(trash, ignore_errors=True)


def build_at(parent: Path, seed: int = DEFAULT_SEED, frames: int = FRAMES) -> Path:
    """``parent/sample_name(seed, frames)``, built (or rebuilt) unless a valid copy is already there."""
    name = sample_name(seed, frames)
    final = parent / name
    parent.mkdir(parents=True, exist_ok=True)
    with _lock(parent / f".{name}.lock"):
        if is_valid(final, seed, frames):
            return final
        _remove_stale_tmp(parent, name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
        try:
            _write_folder(tmp, seed, frames)
            _install(tmp, final, seed, frames)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _private_copy(seed: int, frames: int, reason: OSError) -> Path:
    """When the cache cannot be written: build in a temporary folder removed at exit, and say so once."""
    parent = Path(tempfile.mkdtemp(prefix="b2track-sample-"))
    atexit.register(shutil.rmtree, parent, True)
    print(f"note: cannot write the sample cache {cache_dir()} ({reason.strerror or reason}); "
          f"using a temporary copy", file=sys.stderr)
    return build_at(parent, seed, frames)


def ensure_sample(seed: int = DEFAULT_SEED, frames: int = FRAMES) -> Path:
    """The sample's OTB-layout folder in the cache, built or rebuilt when missing, stale or corrupt."""
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"a sample has 1 to {MAX_FRAMES} frames, got {frames}")
    try:
        return build_at(cache_dir(), seed, frames)
    except OSError as err:
        return _private_copy(seed, frames, err)


def load_sample(seed: int = DEFAULT_SEED, frames: int = FRAMES) -> Sequence:
    """The sample as a ``tracker.sequences.Sequence`` (frames read from the cached OTB folder)."""
    from tracker.sequences import load_sequence

    return load_sequence(ensure_sample(seed, frames))[0]


# ---------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tracker.sample``."""
    p = ArgumentParser(prog="python -m tracker.sample", description=(
        "Build the built-in sample tracking sequence (a seeded synthetic clip with exact ground truth) in "
        f"OTB layout: in the cache ({cache_dir()}) by default, or under --out; prints its folder."))
    p.add_argument("--out", metavar="DIR",
                   help="data root to write the sequence into, as DIR/sample_s<seed> (default: the cache)")
    add_seed_arg(p, DEFAULT_SEED)
    p.add_argument("--frames", type=positive_int, default=FRAMES, metavar="N",
                   help=f"frames to generate, a prefix of the full clip (default {FRAMES}, at most "
                        f"{MAX_FRAMES})")
    return p


def main(argv: list[str] | None = None) -> int:
    """Build (or find) the sample and print where it is."""
    args = build_parser().parse_args(argv)
    if args.frames > MAX_FRAMES:
        raise UsageError(f"--frames {args.frames}: at most {MAX_FRAMES}")
    if args.out is None:
        print(ensure_sample(args.seed, args.frames))
        return 0
    parent = Path(args.out)
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--out {parent}: is a file, not a folder")
    target = parent / sample_name(args.seed, args.frames)
    if target.exists() and not (target / MANIFEST).is_file():
        raise UsageError(f"--out {parent}: {target} exists and is not a b2track sample; choose another "
                         "folder")
    try:
        print(build_at(parent, args.seed, args.frames))
    except OSError as err:
        raise UsageError(f"--out {parent}: cannot write there ({err.strerror or err})") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
