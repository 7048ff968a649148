"""TraX server for the VOT toolkit: ``python -m tracker.vot --checkpoint CKPT`` (or ``--budget B``).

The VOT toolkit starts this as a tracker (``protocol = trax`` in ``trackers.ini``) and talks the TraX
protocol over its stdin/stdout (or ``$TRAX_SOCKET``). Frames arrive as image paths; the target arrives
as a rectangle or a polygon (a polygon becomes its axis-aligned bounding box) and every answer is a
rectangle. TraX coordinates are the VOT toolkit's 0-based pixels, which are b2track's, so boxes pass
unchanged. Any other region type (a mask, a special code) or more than one object is a one-line error
on stderr with exit code 2. Nothing may print to stdout: it is the protocol channel.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

import cv2
import numpy as np

from backbones.cli import (
    ArgumentParser,
    UsageError,
    add_device_arg,
    add_threads_arg,
    apply_threads,
    resolve_device,
    run_cli,
)

SUPPORTED_REGIONS = ("rectangle", "polygon")


class RegionError(UsageError):
    """The TraX client sent a region this server cannot track."""


def region_box(region) -> np.ndarray:
    """A TraX rectangle or polygon as a 0-based ``[x, y, w, h]`` box; RegionError for any other type."""
    from trax import Region

    if region.type == Region.RECTANGLE:
        return np.array(region.bounds(), dtype=np.float64)
    if region.type == Region.POLYGON:
        points = np.array([region[i] for i in range(region.size())], dtype=np.float64).reshape(-1, 2)
        low, high = points.min(axis=0), points.max(axis=0)
        return np.concatenate([low, high - low])
    raise RegionError(f"unsupported TraX region type {region.type!r} from the client; "
                      f"supported: {', '.join(SUPPORTED_REGIONS)}")


def _frame(images: dict) -> np.ndarray:
    """The colour image of a TraX request, read from its path as OpenCV BGR."""
    image = images.get("color")
    if image is None:
        raise UsageError(f"TraX request without a colour image (channels: {', '.join(images) or 'none'})")
    path = image.path()
    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise UsageError(f"cannot read image {path} sent by the TraX client")
    return frame


def _single(objects: list) -> object:
    """The one region of a request's object list (this tracker follows one target)."""
    if len(objects) != 1:
        raise UsageError(f"b2track tracks one object; the TraX client sent {len(objects)}")
    return objects[0][0]


def _answer(box: np.ndarray, confidence: float) -> list:
    """One TraX rectangle status with the tracker's confidence as a property."""
    from trax import Rectangle

    x, y, w, h = (float(v) for v in box)
    return [(Rectangle.create(x, y, w, h), {"confidence": f"{confidence:.4f}"})]


def serve(tracker, server) -> None:
    """Answer TraX requests with ``tracker`` until the client quits."""
    from trax import TraxStatus

    while True:
        request = server.wait()
        if request.type == TraxStatus.QUIT:
            return
        frame = _frame(request.image)
        if request.type == TraxStatus.INITIALIZE or request.objects:
            box = region_box(_single(request.objects))
            tracker.init(frame, box)
        else:
            box = tracker.update(frame)
        server.status(_answer(box, tracker.confidence))


@contextlib.contextmanager
def _closing(server) -> Iterator[object]:
    """Yield a TraX server and say goodbye to the client on exit, without ``Server.__exit__``'s traceback."""
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):  # the client may be gone already; the first error matters
            server.quit()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tracker.vot``."""
    p = ArgumentParser(prog="python -m tracker.vot", description=(
        "TraX server for the VOT toolkit: run a b2track tracker as a VOT tracker (trackers.ini: "
        "protocol = trax, command = python -m tracker.vot --budget 0.3). Accepts rectangle and polygon "
        "regions (a polygon becomes its bounding box) and answers rectangles."))
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", metavar="CKPT", help="tracker checkpoint (.safetensors + sidecar)")
    which.add_argument("--budget", metavar="B", help="zoo model by budget (e.g. 0.3, or 'min'); default 0.3")
    add_device_arg(p, default="cpu")
    add_threads_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Load the tracker, then serve TraX requests on stdin/stdout (or ``$TRAX_SOCKET``)."""
    args = build_parser().parse_args(argv)
    apply_threads(args.threads)
    device = str(resolve_device(args.device))
    from trax import Image, Region, Server, TraxException

    from tracker.siamfc import load_tracker
    from tracker.zoo import find_zoo

    path = args.checkpoint or find_zoo(args.budget or 0.3)
    tracker = load_tracker(path, device=device)
    try:
        with _closing(Server([Region.RECTANGLE, Region.POLYGON], [Image.PATH], tracker_name="b2track",
                                tracker_description=f"b2track SiamFC budget {tracker.budget:.3f}")) as server:
            serve(tracker, server)
    except TraxException as err:
        print(f"error: TraX connection failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
