"""tracker.vot over TraX: a real VOT toolkit workspace (built offline from shared VOT sequences) runs
it, its boxes equal SiamFCTracker's, the toolkit's analysis runs; an unsupported region: one line, exit 2."""
from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
VOT = REPO.parent / "shared" / "data" / "tracking" / "vot"
CHECKPOINT = REPO / "models" / "resnet_b0.3.safetensors"
SEQUENCES = ("bag", "ball1", "car")
FRAMES = 8
pytest.importorskip("vot", reason="the VOT toolkit (vot-toolkit) is not installed")
trax = pytest.importorskip("trax", reason="the TraX bindings (vot-trax) are not installed")
pytestmark = pytest.mark.skipif(not all((VOT / s).is_dir() for s in SEQUENCES),
                                reason=f"shared VOT sequences not found under {VOT}")

STACK = """title: b2track local stack (no download)
experiments:
  baseline:
    type: unsupervised
    repetitions: 1
    analyses:
      - type: average_accuracy
        name: accuracy
        burnin: 0
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _frames(name: str) -> list[Path]:
    folder = VOT / name / "color" if (VOT / name / "color").is_dir() else VOT / name
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")[:FRAMES]


def _polygon_to_rect(line: str) -> str:
    v = np.array([float(x) for x in line.split(",")])
    xs, ys = v[0::2], v[1::2]
    return f"{xs.min()},{ys.min()},{xs.max() - xs.min()},{ys.max() - ys.min()}"


def build_workspace(root: Path) -> Path:
    """A VOT toolkit workspace in its own sequence format (frames symlinked), a local stack, trackers.ini.

    ``car`` gets 4-value rectangles so the toolkit sends both region types (the others are polygons).
    """
    seqs = root / "sequences"
    for name in SEQUENCES:
        color = seqs / name / "color"
        color.mkdir(parents=True)
        for i, frame in enumerate(_frames(name), 1):
            (color / f"{i:08d}.jpg").symlink_to(frame)
        gt = (VOT / name / "groundtruth.txt").read_text().splitlines()[:FRAMES]
        if name == "car":
            gt = [_polygon_to_rect(line) for line in gt]
        (seqs / name / "groundtruth.txt").write_text("\n".join(gt) + "\n")
        meta = f"channels.color=color/%08d.jpg\nfps=30\nformat=default\nname={name}\n"
        (seqs / name / "sequence").write_text(meta)
    (seqs / "list.txt").write_text("\n".join(SEQUENCES) + "\n")
    (root / "stack.yaml").write_text(STACK)
    (root / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: stack.yaml\n")
    command = shlex.join([sys.executable, "-m", "tracker.vot", "--checkpoint", str(CHECKPOINT),
                          "--threads", "1"])
    (root / "trackers.ini").write_text(f"[b2track]\nlabel = b2track\nprotocol = trax\ncommand = {command}\n"
                                       f"env_PYTHONPATH = {REPO}\n")
    return root


# The toolkit's own command line (``vot ...``), minus its update check, which would ask GitHub.
RUN_VOT = ("import sys, vot.utilities.cli as cli; cli.check_updates = lambda: (False, None); "
           "sys.argv[0] = 'vot'; cli.main()")


def _vot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_VOT, *args], capture_output=True, text=True, timeout=300,
                          env=_env(), check=False)


@functools.cache
def _tracker():
    import torch

    from tracker.siamfc import load_tracker

    torch.set_num_threads(1)
    return load_tracker(CHECKPOINT)


def _reference_boxes(name: str, init: np.ndarray) -> np.ndarray:
    """SiamFCTracker in this process on the same frames from the same initial box."""
    tracker = _tracker()
    frames = [cv2.imread(str(p)) for p in _frames(name)]
    tracker.init(frames[0], init)
    return np.array([tracker.update(f) for f in frames[1:]])


def _initial_box(name: str) -> np.ndarray:
    v = np.array([float(x) for x in (VOT / name / "groundtruth.txt").read_text().splitlines()[0].split(",")])
    v = v.astype(np.float32).astype(np.float64)  # TraX sends regions as float32: start where the server does
    xs, ys = v[0::2], v[1::2]
    return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])


@pytest.mark.skipif(not CHECKPOINT.is_file(), reason=f"{CHECKPOINT} not shipped")
def test_vot_toolkit_workspace_runs_the_trax_server(tmp_path: Path) -> None:
    from vot.region import Rectangle, Special
    from vot.region.io import read_trajectory

    ws = build_workspace(tmp_path / "ws")
    run = _vot("evaluate", "--workspace", str(ws), "b2track")
    assert run.returncode == 0, run.stdout + run.stderr
    for name in SEQUENCES:
        trajectory = read_trajectory(str(ws / "results" / "b2track" / "baseline" / name / f"{name}_001.bin"))
        assert len(trajectory) == FRAMES
        assert isinstance(trajectory[0], Special)  # the toolkit's "initialised here" marker
        assert all(isinstance(r, Rectangle) for r in trajectory[1:])
        got = np.array([[r.x, r.y, r.width, r.height] for r in trajectory[1:]])
        want = _reference_boxes(name, _initial_box(name))
        assert np.abs(got - want).max() < 0.05, (name, np.abs(got - want).max())
        assert np.abs(np.diff(want[:, :2], axis=0)).max() > 1  # the target moved: a frozen box would fail
    analysis = _vot("analysis", "--workspace", str(ws), "b2track", "--format", "json")
    assert analysis.returncode == 0, analysis.stdout + analysis.stderr
    (report,) = (ws / "analysis").glob("*.json")
    accuracy = json.loads(report.read_text())["results"]["baseline"]["results"][0][0][0]
    assert 0.3 < accuracy <= 1.0  # average overlap of a working tracker on its first frames


def test_polygon_becomes_its_bounding_box_and_rectangle_passes() -> None:
    from tracker.vot import RegionError, region_box

    poly = trax.Polygon.create([(334.02, 128.36), (438.19, 188.78), (396.39, 260.83), (292.23, 200.41)])
    want = [292.23, 128.36, 438.19 - 292.23, 260.83 - 128.36]
    np.testing.assert_allclose(region_box(poly), want, atol=1e-4)
    np.testing.assert_allclose(region_box(trax.Rectangle.create(1.5, 2, 30, 40)), [1.5, 2, 30, 40])
    with pytest.raises(RegionError, match="unsupported TraX region type 'mask'.*rectangle, polygon"):
        region_box(trax.Mask.create(np.ones((5, 5), np.uint8), 3, 4))


@pytest.mark.skipif(not CHECKPOINT.is_file(), reason=f"{CHECKPOINT} not shipped")
def test_unsupported_region_from_a_trax_client_is_one_line_exit_2() -> None:
    """A raw TraX client (the protocol is text) initialises with a mask, which the server did not offer."""
    server = subprocess.Popen([sys.executable, "-m", "tracker.vot", "--checkpoint", str(CHECKPOINT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env())
    hello = server.stdout.readline().decode()
    assert hello.startswith("@@TRAX:hello") and "trax.region=rectangle;polygon;" in hello
    frame = _frames("bag")[0]
    message = f'@@TRAX:initialize "mask:3,4,5,5,0,25" \n@@TRAX:frame "file://{frame}" \n'
    _, err = server.communicate(message.encode(), timeout=60)
    assert server.returncode == 2
    lines = err.decode().strip().splitlines()
    want = "error: unsupported TraX region type 'mask' from the client; supported: rectangle, polygon"
    assert lines == [want]
    assert "Traceback" not in err.decode()
