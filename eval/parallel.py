"""Where the benchmark's (tracker, sequence) pairs run: in this process, in ``--workers`` spawned processes
(torch threads set per worker), and split over the ranks of ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK),
which meet at torch.distributed (gloo) barriers: no scheduler of our own.

Every pair writes its own results and finished record (``eval.resume``), so how the pairs are spread
changes nothing but the timings.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from backbones.cli import Terminated, UsageError

T = TypeVar("T")
BARRIER_TIMEOUT = timedelta(days=7)  # rank 0 waits for the slowest shard (a LaSOT-sized share takes hours)

# A pair is (tracker name, tracker or TrackerSpec, sequence).
Pair = tuple[str, object, object]


# ---------------------------------------------------------------- one pair


_TRACKERS: dict[object, object] = {}  # in a worker process: the trackers built from their specs


def run_one(pair: Pair, out: Path, max_frames: int | None, built: dict[object, object]) -> dict:
    """Track one pair and write its results and finished record; return the record. A spec (it has
    ``build``) is built once into ``built``; any other tracker object is used as it is."""
    from eval.benchmark import run_pair  # lazy: a spawned worker imports this module first

    name, tracker, seq = pair
    if hasattr(tracker, "build"):
        if tracker not in built:
            built[tracker] = tracker.build()
        tracker = built[tracker]
    return run_pair(name, tracker, seq, out, max_frames)


# ---------------------------------------------------------------- worker processes

_BUSY = False


def _worker_sigterm(signum: int, frame: object) -> None:
    """SIGTERM in a worker: mid-pair, unwind (so atomic writes remove their temporaries); idle, just exit."""
    if not _BUSY:
        os._exit(143)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def _init_worker(threads: int) -> None:
    """Each worker: Ctrl-C is the main process's to handle (it stops the pool), SIGTERM unwinds, and torch
    uses ``threads`` threads (1 by default: N workers share the cores)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)
    import torch

    torch.set_num_threads(threads if threads > 0 else 1)


def _work(task: tuple[Pair, Path, int | None]) -> tuple[str, str]:
    global _BUSY
    _BUSY = True
    try:
        run_one(*task, _TRACKERS)
    except KeyboardInterrupt:  # SIGTERM from the pool's terminate(): temporaries are gone, leave quietly
        os._exit(143)
    finally:
        _BUSY = False
    pair = task[0]
    return pair[0], pair[2].name


def run_pairs(pairs: Sequence[Pair], out: Path, max_frames: int | None, workers: int = 1, threads: int = 0,
              done: Callable[[str, str], None] | None = None) -> None:
    """Track ``pairs`` here (``workers`` 1) or in ``workers`` spawned processes; ``done(tracker, seq)``
    after each. An error, Ctrl-C or SIGTERM stops every worker before it returns (their temporaries go)."""
    done = done or (lambda tracker, seq: None)
    if workers <= 1 or len(pairs) <= 1:
        built: dict[object, object] = {}  # this call's trackers: a later call may reuse a name
        for pair in pairs:
            run_one(pair, out, max_frames, built)
            done(pair[0], pair[2].name)
        return
    order = sorted(pairs, key=lambda p: -len(p[2].frames))  # longest first: the last worker idles least
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    pool = context.Pool(min(workers, len(pairs)), initializer=_init_worker, initargs=(threads,))
    try:
        for tracker, seq in pool.imap_unordered(_work, [(p, out, max_frames) for p in order], chunksize=1):
            done(tracker, seq)
        pool.close()
    finally:
        pool.terminate()  # SIGTERM to the workers, and wait for them
        pool.join()


# ---------------------------------------------------------------- torchrun shards


@dataclass(frozen=True)
class Shard:
    """This process's place among ``torchrun``'s: rank, number of ranks, rank on its node."""

    rank: int
    world: int
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Shard | None:
        """The shard torchrun's environment names, or None outside torchrun (or with one process)."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise UsageError("RANK, WORLD_SIZE, LOCAL_RANK must be integers (torchrun sets them)") from None
        if world <= 1:
            return None
        if not 0 <= rank < world:
            raise UsageError(f"RANK {rank} is not in 0..{world - 1} (WORLD_SIZE {world})")
        return cls(rank, world, local)

    def share(self, pairs: Sequence[Pair]) -> list[Pair]:
        """This rank's pairs: all pairs ordered longest sequence first, dealt round-robin over the ranks
        (the same deal on every rank, so each pair has exactly one owner)."""
        order = sorted(range(len(pairs)), key=lambda i: (-len(pairs[i][2].frames), i))
        return [pairs[i] for k, i in enumerate(order) if k % self.world == self.rank]


class Group:
    """The torch.distributed (gloo) group of the ranks, for barriers and rank 0's verdicts."""

    def __init__(self, shard: Shard) -> None:
        import torch.distributed as dist

        self.shard, self.dist = shard, dist
        self.owned = not dist.is_initialized()
        if self.owned:
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)

    def first(self, step: Callable[[], T]) -> T | None:
        """Run ``step`` on rank 0 only; a UsageError there stops every rank (exit 2; rank 0 prints it), so
        none hangs."""
        message: list[object] = [None]
        result = None
        if self.shard.rank == 0:
            try:
                result = step()
            except UsageError as err:
                message = [str(err)]
        self.dist.broadcast_object_list(message, src=0)
        if message[0] is not None:
            if self.shard.rank != 0:
                raise SystemExit(2)  # rank 0 says why, once
            raise UsageError(message[0])
        return result

    def barrier(self) -> None:
        self.dist.barrier()

    def close(self) -> None:
        if self.owned and self.dist.is_initialized():
            self.dist.destroy_process_group()
