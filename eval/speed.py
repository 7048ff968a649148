"""Speed of packed binary inference (docs/design.md section 7): backbone and per-unit latency, tracker FPS.

One run, one thread setting, medians of repeats. Backbone latency on the 3-scale search batch and on
the exemplar for the same architecture all-FP ("fp"), the checkpoint float-simulated ("float") and
packed ("packed"); per binary unit ``ms_float`` is torch's fastest float32 conv2d of its shape (the
faster of channels_last and NCHW) against ``ms_packed`` (sign-packing where the runner needs it, plus the
XNOR-popcount kernel with its epilogue); tracker FPS (``update`` only) of the three on the clip,
interleaved frame by frame (and latencies repeat by repeat) so that a busy machine slows all alike.

    python -m eval.speed --checkpoint models/resnet_bmin.safetensors --threads 2 [--json]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from backbones.cli import ArgumentParser, UsageError, add_threads_arg, apply_threads, positive_int, run_cli

REPO = Path(__file__).resolve().parents[1]
# Default clip: issue 17's built-in sample (tracker.sample.make_sample) once it exists; until then the
# shared bag video beside the repository. Switch by editing ``load_default_clip`` only.
FALLBACK_CLIP = REPO.parent / "shared" / "data" / "videos" / "bag.avi"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the clip

def load_default_clip(max_frames: int) -> tuple[str, list[np.ndarray], np.ndarray]:
    """The built-in sample sequence when available, else the shared bag video."""
    try:
        from tracker.sample import make_sample  # issue 17
    except ImportError:
        return load_video(FALLBACK_CLIP, max_frames)
    frames, boxes = make_sample()
    clip = [np.asarray(f) for f in list(frames)[:max_frames]]
    return "the built-in sample", clip, np.asarray(boxes[0], float)


def read_init(path: Path, frame: np.ndarray) -> np.ndarray:
    """The ``FILE.init.txt`` box beside a clip, else a centred box of a quarter of the frame's sides."""
    init = path.with_name(path.name + ".init.txt")
    if init.is_file():
        return np.array([float(v) for v in init.read_text().replace(",", " ").split()[:4]])
    h, w = frame.shape[:2]
    return np.array([w * 3 / 8, h * 3 / 8, w / 4, h / 4])


def load_video(path: Path, max_frames: int) -> tuple[str, list[np.ndarray], np.ndarray]:
    if not path.is_file():
        raise UsageError(f"video not found: {path} (give --video FILE or --images DIR)")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if len(frames) < 2:
        raise UsageError(f"--video {path}: fewer than 2 readable frames")
    return str(path), frames, read_init(path, frames[0])


def load_images(folder: Path, max_frames: int) -> tuple[str, list[np.ndarray], np.ndarray]:
    if not folder.is_dir():
        raise UsageError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_frames]
    frames = [f for f in (cv2.imread(str(p)) for p in files) if f is not None]
    if len(frames) < 2:
        raise UsageError(f"--images {folder}: fewer than 2 readable images ({', '.join(IMAGE_SUFFIXES)})")
    return str(folder), frames, read_init(folder, frames[0])


# ---------------------------------------------------------------- timing

STATISTICS = {"median": statistics.median, "min": min}
STATISTIC = ["median"]  # set from --statistic; min is steadier on a busy machine
# --clock: wall time, or the process's CPU time (all its threads), which a busy machine's preemption does not
# inflate; with one thread it is the work each variant does, the fair comparison when others share the cores
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = [CLOCKS["wall"]]


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median (or, with --statistic min, fastest) wall ms of each callable, timed in turn in every repeat,
    so that a machine whose load changes slows them all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                start = CLOCK[0]()
                fn()
                times[name].append(CLOCK[0]() - start)
    return {name: 1000 * STATISTICS[STATISTIC[0]](t) for name, t in times.items()}


def float_conv_fns(x: torch.Tensor, conv: torch.nn.Conv2d) -> dict[str, Callable[[], object]]:
    """torch's float32 conv2d of this unit's shape in channels_last and in NCHW (the faster one counts)."""
    w = torch.randn_like(conv.weight, dtype=torch.float32)
    fns = {}
    for name, fmt in (("float_cl", torch.channels_last), ("float_nchw", torch.contiguous_format)):
        xf, wf = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)
        fns[name] = lambda xf=xf, wf=wf: F.conv2d(xf, wf, None, conv.stride, conv.padding, conv.dilation,
                                                  conv.groups)
    return fns


def unit_inputs(backbone, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each unit's input on a forward of ``x``."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [u.register_forward_pre_hook(lambda _m, args, n=n: seen.__setitem__(n, args[0]))
             for n, u in backbone.units().items()]
    with torch.no_grad():
        backbone.embed(x)
    for h in hooks:
        h.remove()
    return seen


def packed_unit_timer(embedder, backbone, name: str, x: torch.Tensor, path: str):
    """(pack or None, kernel) callables of one binary unit as the packed runner calls it."""
    from backbones.packed import PackedConv
    from backbones.packed_resnet import PackedResNet

    threads = torch.get_num_threads()
    if isinstance(embedder, PackedResNet):
        names = list(backbone.units())
        i = names.index(name)
        block = embedder.blocks[i]
        # packed by the previous binary block's epilogue, or (first block) by the stem's batch-norm pass
        fused = embedder.blocks[i - 1].binary if i > 0 else getattr(embedder, "stem_packs", False)
        pack_next = 1 if i + 1 < len(names) and embedder.blocks[i + 1].binary else 0
        pc, skip = block.packed, block.skip(x)
    else:
        pc, fused, pack_next, skip = PackedConv(backbone.units()[name]), False, 0, None
    xp = pc.pack_input(x, path, threads)
    hw = tuple(x.shape[2:])
    pack = None if fused else (lambda: pc.pack_input(x, path, threads))
    return pack, (lambda: pc.run_packed(xp, hw, path, threads, skip, pack_next))


def layer_rows(model, embedder, path: str, x: torch.Tensor, repeats: int) -> list[dict]:
    """Per binary unit: ms_float (fastest float conv), ms_sim, ms_pack, ms_kernel, ms_packed, speed-up."""
    backbone = model.backbone
    inputs = unit_inputs(backbone, x)
    rows = []
    for name, unit in backbone.units().items():
        if unit.state != "binary":
            continue
        xin = inputs[name].contiguous(memory_format=torch.channels_last)
        pack, kernel = packed_unit_timer(embedder, backbone, name, xin, path)
        fns = {**float_conv_fns(xin, unit.conv), "kernel": kernel, "sim": lambda u=unit, v=xin: u(v)}
        if pack:
            fns["pack"] = pack
        ms = interleaved_ms(fns, repeats)
        ms_float, ms_pack, ms_kernel, ms_sim = (min(ms["float_cl"], ms["float_nchw"]), ms.get("pack", 0.0),
                                                ms["kernel"], ms["sim"])
        ms_packed = ms_pack + ms_kernel
        rows.append({"name": name, "shape": list(xin.shape), "out_channels": unit.conv.out_channels,
                     "ms_float": round(ms_float, 4), "ms_sim": round(ms_sim, 4),
                     "ms_pack": round(ms_pack, 4), "ms_kernel": round(ms_kernel, 4),
                     "ms_packed": round(ms_packed, 4), "speedup_vs_float": round(ms_float / ms_packed, 2)})
    return rows


# ---------------------------------------------------------------- measuring

def search_batch(tracker, frames: list[np.ndarray], box: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The real exemplar and 3-scale search inputs of the clip's first two frames."""
    from tracker.ops import EXEMPLAR_SIZE, INSTANCE_SIZE, crop_and_resize

    tracker.init(frames[0], box)
    z = crop_and_resize(frames[0], tracker.center, tracker.z_size, EXEMPLAR_SIZE, tracker.avg_color)
    center, color = tracker.center, tracker.avg_color
    patches = [crop_and_resize(frames[1], center, tracker.x_size * f, INSTANCE_SIZE, color)
               for f in tracker.scale_factors]
    return tracker._input(z), tracker._input(patches)


def tracker_fps(trackers: dict[str, object], frames: list[np.ndarray], box: np.ndarray) -> dict[str, float]:
    """FPS of ``update`` per tracker over the clip, the trackers interleaved frame by frame."""
    seconds = dict.fromkeys(trackers, 0.0)
    for t in trackers.values():
        t.init(frames[0], box)
    for frame in frames[1:]:
        for name, t in trackers.items():
            start = CLOCK[0]()
            t.update(frame)
            seconds[name] += CLOCK[0]() - start
    return {name: (len(frames) - 1) / s for name, s in seconds.items()}


def build_trackers(checkpoint: str):
    """Packed and float-simulated trackers of the checkpoint, and its same-architecture all-FP tracker."""
    from tracker.siamfc import SiamFCTracker, load_tracker

    packed = load_tracker(checkpoint, kernels="packed")
    float_sim = load_tracker(checkpoint, kernels="float")
    fp_model = copy.deepcopy(float_sim.model)
    fp_model.backbone.set_mask({n: "fp" for n in fp_model.backbone.units()})
    fp = SiamFCTracker(fp_model, name="fp", kernels="float")
    return packed, float_sim, fp


def ratio(ms: dict[str, float]) -> float:
    """Packed backbone time over all-FP backbone time."""
    return round(ms["packed"] / ms["fp"], 4)


def measure(args: argparse.Namespace) -> dict:
    from backbones.kernels import resolve_path

    path = resolve_path()
    if args.video:
        clip, frames, box = load_video(Path(args.video), args.max_frames)
    elif args.images:
        clip, frames, box = load_images(Path(args.images), args.max_frames)
    else:
        clip, frames, box = load_default_clip(args.max_frames)
    packed, float_sim, fp = build_trackers(args.checkpoint)
    z, x = search_batch(float_sim, frames, box)
    log(f"kernel {path}, {torch.get_num_threads()} threads, clip {clip} ({len(frames)} frames)")
    backbone = {}
    for label, inp in (("search", x), ("exemplar", z)):
        fns = {name: lambda t=t, i=inp: t.embed(i) for name, t in (("fp", fp), ("float", float_sim),
                                                                    ("packed", packed))}
        backbone[label] = {name: round(ms, 3) for name, ms in interleaved_ms(fns, args.repeats).items()}
        log(f"backbone {label}: {backbone[label]}")
    layers = layer_rows(float_sim.model, packed.embed, path, x, args.repeats)
    fps = tracker_fps({"packed": packed, "float": float_sim, "fp": fp}, frames, box)
    return {"checkpoint": args.checkpoint, "kernel": path, "threads": torch.get_num_threads(), "clip": clip,
            "frames": len(frames), "repeats": args.repeats, "statistic": args.statistic, "clock": args.clock,
            "budget": round(packed.budget, 4),
            "backbone_ms": backbone,
            "ratio_packed_vs_fp": ratio(backbone["search"]),
            "ratio_packed_vs_fp_exemplar": ratio(backbone["exemplar"]),
            **{f"fps_{name}": round(value, 2) for name, value in fps.items()},
            "layers": layers}


def format_table(r: dict) -> str:
    lines = [(f"{r['checkpoint']} (budget {r['budget']}): kernel {r['kernel']}, {r['threads']} threads, "
              f"{r['statistic']} of {r['repeats']}, {r['clock']} clock"),
             f"{'backbone ms':<14} {'all-FP':>8} {'float-sim':>10} {'packed':>8} {'packed/FP':>10}"]
    for label, ms in r["backbone_ms"].items():
        lines.append(f"{label:<14} {ms['fp']:8.2f} {ms['float']:10.2f} {ms['packed']:8.2f} "
                     f"{ms['packed'] / ms['fp']:10.3f}")
    lines.append(f"{'binary unit':<16} {'input':>18} {'float conv':>10} {'sim':>8} {'pack':>7} {'kernel':>7} "
                 f"{'packed':>7} {'speed-up':>8}")
    for row in r["layers"]:
        shape = "x".join(map(str, row["shape"]))
        lines.append(f"{row['name']:<16} {shape:>18} {row['ms_float']:10.3f} {row['ms_sim']:8.3f} "
                     f"{row['ms_pack']:7.3f} {row['ms_kernel']:7.3f} {row['ms_packed']:7.3f} "
                     f"{row['speedup_vs_float']:7.1f}x")
    lines.append(f"tracker FPS on {r['clip']} ({r['frames']} frames): packed {r['fps_packed']:.1f}, "
                 f"float-sim {r['fps_float']:.1f}, all-FP {r['fps_fp']:.1f} "
                 f"(packed / all-FP {r['fps_packed'] / r['fps_fp']:.2f}x)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m eval.speed", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="tracker checkpoint (.safetensors)")
    add_threads_arg(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", metavar="FILE", help="clip for tracker FPS (default: the built-in sample)")
    src.add_argument("--images", metavar="DIR", help="a folder of frames for tracker FPS")
    p.add_argument("--max-frames", type=positive_int, default=100, metavar="N",
                   help="frames of the clip to track (default 100)")
    p.add_argument("--repeats", type=positive_int, default=20, metavar="N",
                   help="timed repeats per latency, medians reported (default 20)")
    p.add_argument("--statistic", choices=sorted(STATISTICS), default="median",
                   help="latency statistic over the repeats (default median; min resists a busy machine)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall time (default) or the process's CPU time, which other jobs on the cores do not "
                        "inflate (needs --threads 1)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        raise UsageError(f"--clock cpu needs --threads 1 (got --threads {args.threads}): with more threads "
                         "the CPU time sums them, and spinning threads inflate it")
    apply_threads(args.threads)
    STATISTIC[0] = args.statistic
    CLOCK[0] = CLOCKS[args.clock]
    from backbones.checkpoint import read_sidecar

    read_sidecar(args.checkpoint)  # a missing or foreign checkpoint: one line, before any work
    result = measure(args)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
