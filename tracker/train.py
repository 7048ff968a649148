"""Train a SiamFC tracker on a masked B2NN backbone (CPU, GPU, or torchrun DistributedDataParallel).

    python -m tracker.train --backbone alexnet --mask fp --data ROOT --split splits/train.txt \\
        --iterations 1000 --batch-size 8 --out runs/fp
    torchrun --nproc_per_node=2 -m tracker.train ...   # same checkpoint format

Every --save-every iterations and at the end, a checkpoint (weights, sidecar, optimizer state) is committed
as one unit to RUN/.checkpoints/<iteration>/ (the last two are kept), then copied to
RUN/checkpoint.safetensors + .json. Ctrl-C (SIGINT) or SIGTERM lets the current iteration finish, saves
it and exits 130 / 143; --resume continues from the last complete checkpoint, reaching the weights an
uninterrupted run reaches.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from backbones.base import Backbone
from backbones.checkpoint import (
    CheckpointError,
    commit_version,
    complete_versions,
    fault_point,
    read_checkpoint,
    remove_partial,
    save_checkpoint,
)
from backbones.cli import (
    ArgumentParser,
    UsageError,
    apply_threads,
    check_output_dir,
    code_version,
    resolve_device,
    run_cli,
)
from backbones.mask import Mask, MaskError, resolve_mask
from backbones.registry import check_backbone_args
from backbones.unit import STATES
from tracker.checkpoint import load_checkpoint
from tracker.config import RUN_DEFINING, TrainConfig, add_config_args, config_from_args
from tracker.init import kaiming_init, load_init
from tracker.loop import DivergedError, train_over
from tracker.loss import balanced_logistic_loss, distillation_loss
from tracker.model import SiamFC, build_siamfc
from tracker.pairs import OffsetSampler, PairDataset
from tracker.sequences import load_sequences, split_held_out

CHECKPOINT = "checkpoint.safetensors"
SIDECAR = "checkpoint.json"
STATE = "train_state.pt"
UNIT = (CHECKPOINT, SIDECAR, STATE)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def build_parser() -> ArgumentParser:
    """``tracker.train``'s options: one per ``TrainConfig`` field."""
    parser = ArgumentParser(prog="python -m tracker.train", description=__doc__.split("\n\n")[0])
    add_config_args(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The training configuration of a command line."""
    return config_from_args(build_parser().parse_args(argv))


def normalize(batch: torch.Tensor, backbone: Backbone, device: torch.device) -> torch.Tensor:
    """The pair sampler's uint8 NHWC BGR patches -> ``backbone``'s normalised NCHW input on ``device``."""
    pixels = backbone.input_config.reorder(batch.to(device, non_blocking=True).permute(0, 3, 1, 2), "BGR")
    return backbone.normalize(pixels).contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- checks before any work

def check_config(config: TrainConfig) -> Mask:
    """Every check that needs no training: settings, paths, mask; returns the resolved mask."""
    if config.lr_end > config.lr:
        raise UsageError(f"--lr-end {config.lr_end:g} must not exceed --lr {config.lr:g}")
    if not Path(config.data).is_dir():
        raise UsageError(f"tracking data root not found: {config.data}")
    try:
        check_backbone_args(config.backbone, config.width)
    except ValueError as err:
        raise UsageError(f"--backbone/--width: {err}") from None
    inputs = [config.split, config.init_from, config.teacher, None if config.mask in STATES else config.mask]
    check_output_dir(config.out, "--out", inputs=inputs)
    out = Path(config.out)
    if not config.resume and (complete_versions(out, ()) or (out / CHECKPOINT).exists()):
        raise UsageError(f"--out {out} already holds a training run; continue it with --resume or choose "
                         "another --out")
    try:
        return resolve_mask(config.mask, config.backbone, config.width)
    except MaskError as err:
        raise UsageError(str(err)) from None


OPTIONAL = ("split", "init_from", "teacher")  # settings whose absence (None) is itself a setting
PATHS = ("data", *OPTIONAL)


def _recorded(meta: dict[str, Any], ckpt_mask: Mask) -> dict[str, Any]:
    """The run-defining settings a checkpoint's sidecar records (settings it does not record are left out)."""
    values = dict(meta.get("training") or {})
    values |= {"backbone": ckpt_mask.backbone, "width": ckpt_mask.width, "mask": ckpt_mask.units,
               "seed": meta.get("seed")}
    data = meta.get("data") or {}
    values |= {"data": data.get("root")} | ({"split": data["split"]} if "split" in data else {})
    return {k: values[k] for k in RUN_DEFINING if k in values and (values[k] is not None or k in OPTIONAL)}


def _same_setting(name: str, recorded: Any, given: Any) -> bool:
    if recorded is None or given is None:
        return recorded is None and given is None
    if name in PATHS:
        return Path(recorded).resolve() == Path(given).resolve()
    if isinstance(recorded, float) or isinstance(given, float):
        return isinstance(given, (int, float)) and math.isclose(recorded, given, rel_tol=1e-12)
    return recorded == given


def check_resume(config: TrainConfig, mask: Mask, meta: dict[str, Any], ckpt_mask: Mask, world: int) -> None:
    """A resumed run must have the settings of the run it continues, and iterations left to do."""
    given = {f: getattr(config, f) for f in RUN_DEFINING} | {"mask": mask.units}
    for name, recorded in _recorded(meta, ckpt_mask).items():
        if not _same_setting(name, recorded, given[name]):
            flag = f"--{name.replace('_', '-')}"
            what = "another mask" if name == "mask" else f"{flag} {recorded}, not {given[name]}"
            raise UsageError(f"--resume: {config.out} was trained with {what}; resume with its settings or "
                             "choose another --out")
    recorded_world = (meta.get("training") or {}).get("world_size", world)
    if recorded_world != world:
        raise UsageError(f"--resume: {config.out} was trained by {recorded_world} process(es), not {world}")
    done = int(meta["iterations"])
    if config.iterations < done:
        raise UsageError(f"--resume: {config.out} has already done {done} iterations; --iterations "
                         f"{config.iterations} is fewer")


# ---------------------------------------------------------------- one training session

@dataclass
class Session:
    """A training run in progress: config, mask, model (and its DDP wrapper), optimizer, progress."""

    config: TrainConfig
    mask: Mask
    model: SiamFC
    net: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ExponentialLR
    teacher: SiamFC | None
    device: torch.device
    rank: int
    world: int
    start: int = 0
    saved: int = -1
    wall_before: float = 0.0
    code: str = "unknown"

    @property
    def out(self) -> Path:
        return Path(self.config.out)


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _process_device(spec: str, rank: int, world: int) -> torch.device:
    """The device of this process: ``resolve_device``'s, with torchrun's LOCAL_RANK picking the GPU."""
    device = resolve_device(spec)
    if device.type == "cuda":
        if world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _optimizer(config: TrainConfig, model: SiamFC) -> tuple[torch.optim.Optimizer, Any]:
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                                            weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    gamma = math.exp(math.log(config.lr_end / config.lr) / max(1, config.iterations - 1))
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)


def build_session(config: TrainConfig, mask: Mask, rank: int, world: int, device: torch.device) -> Session:
    """Model (seeded Kaiming or --init-from), teacher, optimizer and schedule; restored when --resume."""
    torch.manual_seed(config.seed)
    model = build_siamfc(mask)
    kaiming_init(model)
    if config.init_from:
        load_init(model, config.init_from)
    model = model.to(device).train().to(memory_format=torch.channels_last)
    teacher = load_checkpoint(config.teacher, device)[0] if config.teacher else None
    optimizer, scheduler = _optimizer(config, model)
    net = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    session = Session(config, mask, model, net, optimizer, scheduler, teacher, device, rank, world,
                      code=code_version())
    if config.resume:
        restore(session)
    return session


def _read_unit(folder: Path, session: Session) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A checkpoint unit (weights, sidecar, optimizer state) that agrees with itself."""
    ckpt = read_checkpoint(folder / CHECKPOINT, kind="tracker")
    try:
        state = torch.load(folder / STATE, map_location=session.device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged state file is a user-facing error
        raise CheckpointError(f"{folder / STATE} is unreadable: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler"} <= state.keys():
        raise CheckpointError(f"{folder / STATE} is not a tracker.train state (optimizer, scheduler, "
                              "iteration)")
    if state.get("iteration") != ckpt.sidecar.get("iterations"):
        raise CheckpointError(f"{folder / STATE} and {folder / CHECKPOINT} disagree on the iteration")
    return ckpt, ckpt.sidecar, state


def _last_complete(session: Session) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The newest checkpoint unit of the run that reads back whole (versions, then a pre-versioning run)."""
    out = session.out
    candidates = complete_versions(out, UNIT) + ([out] if (out / STATE).is_file() else [])
    errors = []
    for folder in candidates:
        try:
            return _read_unit(folder, session)
        except CheckpointError as err:
            errors.append(str(err))
            print(f"warning: --resume: skipping {folder}: {err}", file=sys.stderr)
    why = f" ({errors[0]})" if errors else ""
    raise UsageError(f"--resume: no complete checkpoint in {out}{why}")


def restore(session: Session) -> None:
    """Continue ``session`` from its run's last complete checkpoint."""
    remove_partial(session.out)
    ckpt, meta, state = _last_complete(session)
    check_resume(session.config, session.mask, meta, ckpt.mask, session.world)
    session.model.load_state_dict(ckpt.tensors)
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    session.scheduler.gamma = _optimizer(session.config, session.model)[1].gamma  # --iterations may grow
    session.start = session.saved = int(state["iteration"])
    wall = (meta.get("training") or {}).get("wall_seconds")
    session.wall_before = float(wall) if isinstance(wall, (int, float)) else 0.0


def _meta(session: Session, iteration: int, wall: float) -> dict[str, Any]:
    config = session.config
    pairs = (iteration - session.start) * config.batch_size * session.world
    training = {k: getattr(config, k) for k in RUN_DEFINING
                if k not in ("backbone", "width", "mask", "data", "split", "seed")}
    training |= {"iterations": config.iterations, "world_size": session.world, "wall_seconds": round(wall, 1),
                 "pairs_per_second": round(pairs / max(wall - session.wall_before, 1e-9), 2)}
    return {"training": training, "data": {"root": str(config.data), "split": config.split},
            "iterations": iteration, "seed": config.seed, "code_version": session.code, "metrics": {}}


def save(session: Session, iteration: int, started: float) -> None:
    """Commit the checkpoint of ``iteration`` (rank 0) as one unit, then publish it as RUN/checkpoint.*."""
    if session.rank != 0 or iteration == session.saved:
        return
    meta = _meta(session, iteration, session.wall_before + time.perf_counter() - started)
    state = {"iteration": iteration, "optimizer": session.optimizer.state_dict(),
             "scheduler": session.scheduler.state_dict()}

    def write(folder: Path) -> None:
        save_checkpoint(folder / CHECKPOINT, session.model, session.mask, meta)
        torch.save(state, folder / STATE)
        fault_point("state")

    commit_version(session.out, iteration, write, publish=(CHECKPOINT, SIDECAR))
    session.saved = iteration


# ---------------------------------------------------------------- the loop

class StopFlag:
    """SIGINT / SIGTERM set a flag (the loop stops at the next iteration boundary); a second one aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in EXIT_CODES}
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def agreed(self, world: int) -> int | None:
        """The signal to stop on, the same in every process (the largest received anywhere)."""
        if world == 1:
            return self.signum
        flag = torch.tensor([self.signum or 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag) or None


def _ignore_sigint(_worker: int) -> None:
    """Loader workers leave Ctrl-C (sent to the whole process group) to the training process, which stops at
    an iteration boundary; SIGTERM ends them (the loader's shutdown uses it), not the forked stop flag."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def siamfc_loss(session: Session, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Balanced logistic loss of a pair batch (plus distillation towards the teacher, if any)."""
    config, device, backbone = session.config, session.device, session.model.backbone
    logits = session.net(normalize(batch[0], backbone, device), normalize(batch[1], backbone, device))
    fault_point("forward")
    loss = balanced_logistic_loss(logits, backbone.total_stride, config.positive_radius)
    if session.teacher is not None:
        teacher = session.teacher.backbone
        with torch.no_grad():
            target = session.teacher(normalize(batch[0], teacher, device),
                                     normalize(batch[1], teacher, device))
        loss = loss + config.distill_weight * distillation_loss(logits, target)
    return loss


def _batches(session: Session) -> DataLoader:
    config = session.config
    sequences = load_sequences(config.data, config.split)
    if config.hold_out:
        sequences = split_held_out(sequences)[1]
    dataset = PairDataset(sequences, seed=config.seed,
                          max_gap=config.max_gap, color_jitter=config.color_jitter,
                          flip=config.flip, gray=config.gray)
    sampler = OffsetSampler(session.start, config.iterations, config.batch_size, session.rank, session.world)
    return DataLoader(dataset, batch_size=config.batch_size, num_workers=config.workers, sampler=sampler,
                      worker_init_fn=_ignore_sigint, pin_memory=session.device.type == "cuda")


def run(session: Session, stop: int) -> int:
    """Train ``session`` up to iteration ``stop``, saving at boundaries; returns the exit code."""
    started, config = time.perf_counter(), session.config
    loader = _batches(session)
    outcome: dict[str, int] = {}
    with StopFlag() as flag:

        def after(done: int, _loss: float) -> bool:
            stopping = flag.agreed(session.world)
            if done % config.save_every == 0 or done == stop or stopping:
                save(session, done, started)
            if stopping:
                outcome["code"] = EXIT_CODES[signal.Signals(stopping)]
            return stopping is not None

        try:
            done, _ = train_over(iter(loader), lambda b: siamfc_loss(session, b), session.optimizer,
                                 session.scheduler, session.start, stop, after, show=session.rank == 0)
        except DivergedError as err:
            kept = (f"{session.out} keeps the last finite checkpoint (iteration {session.saved})"
                    if session.saved > 0 else "no checkpoint was written")
            raise DivergedError(f"{err}; {kept}") from None
    if session.rank == 0:
        if "code" in outcome:
            print(f"interrupted: saved iteration {done} in {session.out}; continue with --resume",
                  file=sys.stderr)
        elif done == config.iterations:
            print(f"done: {done} iterations -> {session.out / CHECKPOINT}", file=sys.stderr)
    return outcome.get("code", 0)


def train(config: TrainConfig, stop_at: int | None = None) -> int:
    """Run (or with --resume continue) training; ``stop_at`` ends the session early at that iteration."""
    mask = check_config(config)
    apply_threads(config.threads)
    rank, world = _distributed()
    try:
        session = build_session(config, mask, rank, world, _process_device(config.device, rank, world))
        if session.start == config.iterations:
            print(f"{config.out} has already done its {config.iterations} iterations; nothing to do",
                  file=sys.stderr)
            return 0
        return run(session, config.iterations if stop_at is None else min(stop_at, config.iterations))
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    return train(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
