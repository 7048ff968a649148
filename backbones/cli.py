"""Shared CLI plumbing: one-line errors with exit code 2, and atomic file writes."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2, no traceback."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, a container stop) raised as an exception, so cleanups run as for Ctrl-C."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are UsageErrors: one line and exit code 2 through ``run_cli``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A value such as "-50,100,100,100" (a box with a negative x) or "-1e-3" is a value, not an option.
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?([,\s][-+\d.eE,\s]*)?$")

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def finite_float(text: str) -> float:
    """argparse type: a finite float (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(low: int, high: int | None = None, name: str | None = None) -> Callable[[str], int]:
    """argparse type factory: an integer in [low, high] (no upper bound when ``high`` is None).

    Out-of-range values are refused, never clamped.
    """
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name or f"int_{low}_{high}"
    return parse


def float_range(low: float, high: float | None = None, low_open: bool = False,
                name: str | None = None) -> Callable[[str], float]:
    """argparse type factory: a finite float in [low, high], or (low, high] with ``low_open`` (no upper
    bound when ``high`` is None). Out-of-range values are refused, never clamped."""
    if high is None:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        value = finite_float(text)
        if value < low or (low_open and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = name or f"float_{low:g}_{high}"
    return parse


# The argparse types of counts, learning rates and loss weights.
positive_int = int_range(1, name="positive_int")
nonnegative_int = int_range(0, name="nonnegative_int")
positive_float = float_range(0, low_open=True, name="positive_float")
nonnegative_float = float_range(0, name="nonnegative_float")


# ---------------------------------------------------------------- shared options

MAX_THREADS = 1024  # more would only spawn idle threads
MAX_WORKERS = 256  # worker processes; more is a fork bomb, not a data loader
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit

def add_device_arg(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """--device auto|cpu|cuda|cuda:N, resolved by ``resolve_device``."""
    parser.add_argument("--device", default=default, type=_device_spec, metavar="DEVICE",
                        help=f"torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N "
                             f"(default {default})")


def _device_spec(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose auto, cpu, cuda or cuda:N")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The one device resolver: 'auto' is cuda when available, else cpu; a missing GPU is a UsageError."""
    import torch

    text = str(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        text = _device_spec(text)
    except argparse.ArgumentTypeError as err:
        raise UsageError(str(err)) from None
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {text}: no CUDA device is available; use cpu or auto")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {text}: only {torch.cuda.device_count()} CUDA device(s) are available")
    return torch.device(text)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """--threads N (0 = torch's default), applied by ``apply_threads``."""
    parser.add_argument("--threads", type=int_range(0, MAX_THREADS), default=0, metavar="N",
                        help="torch CPU threads (default 0 = torch's choice; 1 is steadier on a busy "
                             "machine)")


def apply_threads(threads: int) -> None:
    """Set torch's intra-op thread count when ``threads`` > 0."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def add_workers_arg(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """--workers N: data-loading worker processes."""
    parser.add_argument("--workers", type=int_range(0, MAX_WORKERS), default=default, metavar="N",
                        help=f"data-loading worker processes (default {default}; 0 loads in the main "
                             "process)")


def add_seed_arg(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """--seed S: the seed of everything random."""
    parser.add_argument("--seed", type=int_range(0, MAX_SEED), default=default, metavar="S",
                        help=f"seed of everything random (default {default})")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _writable_ancestor(path: Path, option: str) -> None:
    """Refuse a path under a file, or whose first existing ancestor is not a writable folder."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: folder {parent} is not writable")


def check_output_file(path: str | os.PathLike, option: str = "--out",
                      inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check before any work that ``path`` can be written as a file and is none of ``inputs``."""
    out = Path(path)
    for given in inputs:
        if given is not None and _same(out, Path(given)):
            raise UsageError(f"{option} {out}: is an input of this run; choose another path")
    if out.is_dir():
        raise UsageError(f"{option} {out}: is a folder; give a file path")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"{option} {out}: is not writable")
    _writable_ancestor(out, option)
    return out


def check_output_dir(path: str | os.PathLike, option: str = "--out",
                     inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check before any work that ``path`` can be (or is) a writable folder, holding none of ``inputs``."""
    out = Path(path)
    for given in inputs:
        if given is None:
            continue
        given_path = Path(given).resolve()
        if _same(out, given_path) or out.resolve() in given_path.parents:
            raise UsageError(f"{option} {out}: holds an input of this run ({given}); choose another folder")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out}: is a file, not a folder")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {out}: folder is not writable")
    else:
        _writable_ancestor(out, option)
    return out


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise Terminated()


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the block runs, then act on one that came: a block of steps that must
    not be split (a frame written and counted) is never interrupted half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    before = {s: signal.signal(s, lambda signum, _frame: held.append(signum))
              for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if held:
        handler = before[held[0]]
        if callable(handler):
            handler(held[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), held[0])


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a CLI ``main``: a UsageError is one stderr line and exit code 2; Ctrl-C (130) and SIGTERM (143)
    unwind through every ``finally`` (so no temporary file is left) and print one line."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(main(argv) or 0)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated (SIGTERM); nothing partial was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (``... | head``): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _temp_prefix(target: Path) -> str:
    """Temporary names beside ``target`` carry the writer's pid: ``.NAME.PID.XXXXXXXX.tmp...``."""
    return f".{target.name}.{os.getpid()}."


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, another user's
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``target`` left by a killed writer (its pid is gone); returns them."""
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            match = pattern.match(entry.name)
            if match and not _owner_alive(int(match.group(1))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp (and writers that recreate the file) leave 0600
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` only if the block succeeds.

    With ``replace`` an existing folder at ``path`` is swapped out (and removed) once the new one is
    complete; without it, an existing ``path`` is a UsageError.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    if target.exists() and not replace:
        raise UsageError(f"output folder already exists: {target}")
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename folder ``tmp`` onto ``target``; an existing ``target`` is put back if the rename fails."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp.old", dir=target.parent))
    os.rename(target, old / target.name)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when modified), or 'unknown' outside git."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               check=False, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")
