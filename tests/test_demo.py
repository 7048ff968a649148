"""demo.py: headless and windowed runs on the real demo clips, outputs, keys, and every bad input."""
import errno
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, VIDEOS, needs_shared
from test_zoo import make_zoo

import demo
from backbones.cli import UsageError, run_cli

BAG, BAG_INIT, BAG_FRAMES = VIDEOS / "bag.avi", "292,128,146,132", 196
TENNIS, TENNIS_INIT = VIDEOS / "tennis", "305,110,165,252"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A tiny zoo (resnet width 0.25, untrained): the default budget 0.3, plus 1.0 and min."""
    return make_zoo(tmp_path_factory.mktemp("zoo"), budgets=("1.0", "0.3", "min"))


@pytest.fixture(autouse=True)
def _headless_zoo(zoo, monkeypatch):
    """Every in-process run uses the tiny zoo and sees no display (so it runs headless)."""
    monkeypatch.setenv("B2TRACK_MODELS", str(zoo))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def video_frames(path):
    """(frame count OpenCV reports, frames really decoded, frame size) of a video file."""
    cap = cv2.VideoCapture(str(path))
    reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size, decoded = None, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded, size = decoded + 1, frame.shape[1::-1]
    cap.release()
    return reported, decoded, size


def read_boxes(path):
    """The x,y,w,h columns of a --save-boxes file (each row: x,y,w,h,confidence,lost)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    assert rows.shape[1] == 6 and np.isin(rows[:, 5], (0, 1)).all() and (rows[0, 4:] == (1, 0)).all()
    assert ((rows[:, 4] >= 0) & (rows[:, 4] <= 1)).all()
    return rows[:, :4]


def run_ok(capsys, argv):
    assert run_cli(demo.main, argv) == 0
    return capsys.readouterr().out


@needs_shared
def test_bag_full_length_headless_writes_every_frame(tmp_path, capsys):
    out, boxes = tmp_path / "out" / "bag.mp4", tmp_path / "out" / "bag.txt"
    text = run_ok(capsys, ["--video", str(BAG), "--init", BAG_INIT, "--output", str(out),
                           "--save-boxes", str(boxes), "--device", "cpu"])
    assert video_frames(out) == (BAG_FRAMES, BAG_FRAMES, (480, 360))
    b = read_boxes(boxes)
    assert b.shape == (BAG_FRAMES, 4) and np.all(np.isfinite(b)) and np.all(b[:, 2:] > 0)
    assert b[0].tolist() == [292, 128, 146, 132]
    assert sorted(p.name for p in out.parent.iterdir()) == ["bag.mp4", "bag.txt"]  # no temporary left
    assert f"{BAG_FRAMES} frames" in text and "resnet_b0.3" in text and "headless" in text
    assert "mean FPS" in text and "GOPs/frame" in text and "budget 0." in text


@needs_shared
def test_image_folder_with_max_frames(tmp_path, capsys):
    out, boxes = tmp_path / "tennis.mp4", tmp_path / "tennis.txt"
    text = run_ok(capsys, ["--images", str(TENNIS), "--init", TENNIS_INIT, "--output", str(out),
                           "--save-boxes", str(boxes), "--max-frames", "12", "--budget", "min",
                           "--threads", "1"])
    assert video_frames(out) == (12, 12, (854, 480))
    assert read_boxes(boxes).shape == (12, 4) and read_boxes(boxes)[0].tolist() == [305, 110, 165, 252]
    assert "12 frames" in text and "resnet_bmin" in text and "--max-frames 12" in text


def test_checkpoint_option_and_natural_frame_order(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for k in (1, 2, 10):  # natural order: 1, 2, 10 (a plain sort would give 1, 10, 2)
        cv2.imwrite(str(frames / f"f{k}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    (frames / "notes.txt").write_text("not a frame")
    ckpt = make_zoo(tmp_path / "elsewhere", budgets=("1.0",)) / "resnet_b1.0.safetensors"
    boxes = tmp_path / "b.txt"
    text = run_ok(capsys, ["--images", str(frames), "--init", "40,30,30,30", "--checkpoint", str(ckpt),
                           "--save-boxes", str(boxes)])
    assert "3 frames" in text and "resnet_b1.0" in text and "budget 1.000" in text
    assert demo._natural_key(frames / "f2.png") < demo._natural_key(frames / "f10.png")
    assert read_boxes(boxes).shape == (3, 4)


def square_frames(folder, n=16, vanish_at=4, size=(160, 120)):
    """A textured square that moves right, then vanishes (the frames turn to plain noise)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    for k in range(n):
        frame = rng.integers(80, 100, (size[1], size[0], 3), dtype=np.uint8)
        if k < vanish_at:
            frame[40:64, 30 + 8 * k:54 + 8 * k] = patch
        cv2.imwrite(str(folder / f"{k:03d}.png"), frame)
    return folder


def test_target_lost_mid_video_does_not_crash(tmp_path, capsys):
    frames = square_frames(tmp_path / "frames")
    boxes, out = tmp_path / "boxes.txt", tmp_path / "lost.mp4"
    text = run_ok(capsys, ["--images", str(frames), "--init", "30,40,24,24", "--save-boxes", str(boxes),
                           "--output", str(out), "--budget", "min"])
    b = read_boxes(boxes)
    assert b.shape == (16, 4) and np.all(np.isfinite(b)) and np.all(b[:, 2:] >= 2)
    assert video_frames(out)[1] == 16 and "frames flagged LOST?:" in text
    lost = np.loadtxt(boxes, delimiter=",")[:, 5]  # this test zoo's weights are untrained: no rate to expect
    # (tests/test_tracker_confidence.py checks that blank frames after a target give lost=True)
    assert int(text.split("frames flagged LOST?: ")[1].split()[0]) == lost.sum()


def test_overlay_marks_a_likely_loss_in_red():
    frame = np.full((120, 160, 3), 128, np.uint8)
    info = demo.Overlay("m", 0.3, 1.2, fps=20.0, confidence=0.9)
    found = demo.draw_overlay(frame, [50, 60, 40, 30], info)
    info.lost, info.confidence = True, 0.05
    lost = demo.draw_overlay(frame, [50, 60, 40, 30], info)
    assert np.array_equal(frame, np.full_like(frame, 128))  # the input frame is left as it was
    assert tuple(found[90, 70]) == demo.GREEN and tuple(lost[90, 70]) == demo.RED  # bottom edge of the box
    assert not np.array_equal(found[:40], frame[:40])  # the figures are printed at the top


def test_keys_pause_reselect_and_quit(tmp_path, capsys, monkeypatch):
    """The loop's key handling, with the window calls replaced by a script of key actions."""
    frames = square_frames(tmp_path / "frames", n=12)
    actions = iter([None, "pause", "pause", "reselect", None, "pause", "quit"])
    shown = []

    def fake_show(image, wait_ms=1):
        shown.append(image.shape)
        return next(actions)

    selections = []
    monkeypatch.setattr(demo, "has_display", lambda: True)
    monkeypatch.setattr(demo, "show", fake_show)
    monkeypatch.setattr(demo, "select_target",
                        lambda frame: selections.append(frame.shape) or [30, 40, 24, 24])
    monkeypatch.setattr(demo.cv2, "destroyAllWindows", lambda: None)
    boxes = tmp_path / "b.txt"
    text = run_ok(capsys, ["--images", str(frames), "--init", "30,40,24,24", "--save-boxes", str(boxes)])
    # frame 1 shown; frame 2 pauses, resumes; frame 3 re-selects; frame 4; frame 5 pauses, quits in the pause
    assert len(shown) == 7 and len(selections) == 1 and read_boxes(boxes).shape == (5, 4)
    assert "5 frames" in text and "(quit)" in text and "re-selections: 1" in text and "in a window" in text


def test_cancelled_selection_exits_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "has_display", lambda: True)
    monkeypatch.setattr(demo, "select_target", lambda frame: None)
    monkeypatch.setattr(demo.cv2, "destroyAllWindows", lambda: None)
    frames = square_frames(tmp_path / "frames", n=3)
    out = tmp_path / "out"
    code = run_cli(demo.main, ["--images", str(frames), "--output", str(out / "o.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("no target selected") and not out.exists()


def error_line(capsys, argv):
    assert run_cli(demo.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and err[0].startswith("error: ")
    return err[0]


@pytest.fixture
def bad_inputs(tmp_path, zoo):
    """Named argument lists that must each fail with one line, and what that line must say."""
    frames = square_frames(tmp_path / "frames", n=3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "000.jpg").write_bytes(b"")
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "junk.avi").write_text("not a video")
    truncated = tmp_path / "broken.safetensors"
    truncated.write_bytes((zoo / "resnet_b1.0.safetensors").read_bytes()[:3000])
    shutil.copy(zoo / "resnet_b1.0.json", tmp_path / "broken.json")
    src, init = ["--images", str(frames)], ["--init", "1,1,5,5"]
    return {
        "missing video": (["--video", str(tmp_path / "none.avi"), *init], "video not found"),
        "unreadable video": (["--video", str(tmp_path / "junk.avi"), *init], "cannot read video"),
        "video is a folder": (["--video", str(tmp_path / "empty"), *init], "use --images"),
        "empty folder": (["--images", str(tmp_path / "empty"), *init], "no images"),
        "missing folder": (["--images", str(tmp_path / "nope"), *init], "image folder not found"),
        "webcam": (["--webcam", "97", *init], "webcam 97 does not open"),
        "webcam negative": (["--webcam", "-1", *init], "--webcam: expected an integer from 0 to"),
        "webcam beyond int32": (["--webcam", "2147483648", *init], "--webcam: expected an integer from 0 to"),
        "empty jpeg": (["--images", str(tmp_path / "zero"), *init], "000.jpg (an empty file)"),
        "threads negative": ([*src, *init, "--threads", "-1"], "--threads"),
        "device banana": ([*src, *init, "--device", "banana"], "unknown device 'banana'"),
        "boxes under a file": ([*src, *init, "--save-boxes", str(tmp_path / "a-file" / "b.txt")],
                               "is a file, not a folder"),
        "budget not shipped": ([*src, *init, "--budget", "0.7"], "shipped budgets: 1.0, 0.3, min"),
        "budget malformed": ([*src, *init, "--budget", "fast"], "budget must be a number"),
        "init outside": ([*src, "--init", "500,10,20,20"], "lies outside the 160x120 frame"),
        "init zero size": ([*src, "--init", "10,10,0,20"], "w, h > 0"),
        "init malformed": ([*src, "--init", "1,2,3"], "--init must be x,y,w,h"),
        "init not numbers": ([*src, "--init", "a,b,c,d"], "--init must be x,y,w,h"),
        "no init headless": (src, "--init x,y,w,h is needed without a display"),
        "checkpoint truncated": ([*src, *init, "--checkpoint", str(truncated)], "truncated or corrupt"),
        "checkpoint missing": ([*src, *init, "--checkpoint", str(tmp_path / "x.safetensors")],
                               "checkpoint not found"),
        "budget and checkpoint": ([*src, *init, "--budget", "1", "--checkpoint", str(truncated)], "not both"),
        "output suffix": ([*src, *init], "must end in one of"),
        "sample and a source": (["--sample", *src, *init], "not allowed with argument --sample"),
    }


BAD = ["missing video", "unreadable video", "video is a folder", "empty folder", "missing folder", "webcam",
       "webcam negative", "webcam beyond int32", "empty jpeg", "threads negative", "device banana",
       "boxes under a file",
       "budget not shipped", "budget malformed", "init outside", "init zero size", "init malformed",
       "init not numbers", "no init headless", "checkpoint truncated", "checkpoint missing",
       "budget and checkpoint", "output suffix", "sample and a source"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, bad_inputs, tmp_path, capsys):
    argv, expected = bad_inputs[case]
    out = tmp_path / "out"
    video = out / ("o.mkv.txt" if case == "output suffix" else "o.mp4")
    boxes = [] if "--save-boxes" in argv else ["--save-boxes", str(out / "b.txt")]
    line = error_line(capsys, [*argv, "--output", str(video), *boxes])
    assert expected in line, line
    assert not out.exists() or not any(out.iterdir())


def test_failure_mid_run_removes_the_partial_outputs(tmp_path, capsys):
    frames = square_frames(tmp_path / "frames", n=6)
    (frames / "003.png").write_bytes(b"corrupt")
    out = tmp_path / "out"
    line = error_line(capsys, ["--images", str(frames), "--init", "30,40,24,24",
                               "--output", str(out / "o.mp4"), "--save-boxes", str(out / "b.txt")])
    assert "cannot read image" in line and "003.png" in line
    assert not any(out.iterdir())  # the temporary video and boxes were removed


def test_an_empty_frame_mid_run_is_one_line_naming_it(tmp_path, capsys):
    frames = square_frames(tmp_path / "frames", n=6)
    (frames / "004.png").write_bytes(b"")
    out = tmp_path / "out"
    line = error_line(capsys, ["--images", str(frames), "--init", "30,40,24,24",
                               "--save-boxes", str(out / "b.txt")])
    assert "004.png (an empty file)" in line and not any(out.iterdir())


def test_negative_x_in_init_is_a_box_not_an_option(tmp_path, capsys):
    frames = square_frames(tmp_path / "frames", n=3)
    boxes = tmp_path / "b.txt"
    run_ok(capsys, ["--images", str(frames), "--init", "-10,40,50,24", "--save-boxes", str(boxes)])
    assert read_boxes(boxes)[0].tolist() == [-10, 40, 50, 24]


def test_a_huge_or_exponent_written_init_box_runs(tmp_path, capsys):
    frames = square_frames(tmp_path / "frames", n=3)
    for init in ("0,0,1e30,5", "-1e9,0,2e9,10", "-1e-3,40,50,24"):
        boxes = tmp_path / "b.txt"
        run_ok(capsys, ["--images", str(frames), "--init", init, "--save-boxes", str(boxes)])
        np.testing.assert_allclose(read_boxes(boxes)[0], [float(v) for v in init.split(",")], atol=0.005)


def test_save_boxes_onto_the_video_leaves_the_video(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    shutil.copy(BAG, video) if BAG.is_file() else video.write_bytes(b"a video")
    before = video.read_bytes()
    line = error_line(capsys, ["--video", str(video), "--init", BAG_INIT, "--save-boxes", str(video)])
    assert "is an input" in line and video.read_bytes() == before


REAL_WRITER = cv2.VideoWriter


class FullDiskWriter:
    """cv2.VideoWriter whose file is cut short on release, as when the disk fills up (OpenCV says nothing)."""

    def __init__(self, path, *args):
        self.path, self.writer = path, REAL_WRITER(path, *args)

    def isOpened(self):
        return self.writer.isOpened()

    def write(self, frame):
        self.writer.write(frame)

    def release(self):
        self.writer.release()
        with open(self.path, "r+b") as f:
            f.truncate(200)


def test_a_full_disk_while_writing_the_video_is_one_line_and_renames_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo.cv2, "VideoWriter", FullDiskWriter)
    frames = square_frames(tmp_path / "frames", n=5)
    out = tmp_path / "out"
    out.mkdir()
    line = error_line(capsys, ["--images", str(frames), "--init", "30,40,24,24",
                               "--output", str(out / "o.mp4"), "--save-boxes", str(out / "b.txt")])
    assert "writing video" in line and "of 5 frames" in line and "disk full" in line
    assert not any(out.iterdir())  # neither the broken video nor the boxes, and no temporary


class FullDiskFile:
    """A text file on a full disk."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        pass


def test_a_full_disk_while_writing_boxes_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "open", lambda self, *args, **kwargs: FullDiskFile())
    with pytest.raises(UsageError, match="b.txt failed: No space left on device"), \
            demo.boxes_sink(tmp_path / "b.txt") as write:
        write([1, 2, 3, 4], 0.9, False)
    assert list(tmp_path.iterdir()) == []


def start_demo(tmp_path, zoo, argv):
    env = {**os.environ, "B2TRACK_MODELS": str(zoo), "PYTHONPATH": str(REPO)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen([sys.executable, str(REPO / "demo.py"), *argv], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc, seconds=120):
    """Poll until ``predicate()`` holds (or the process ends, or ``seconds`` pass); no timing is asserted."""
    import time

    deadline = time.monotonic() + seconds
    while not predicate() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@needs_shared
def test_sigterm_mid_run_stops_cleanly_and_leaves_no_temporary(tmp_path, zoo):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".o.mp4.{dead_pid()}.abcdefgh.tmp.mp4"  # what a run killed with SIGKILL leaves
    stale.write_bytes(b"half a video")
    argv = ["--video", str(BAG), "--init", BAG_INIT, "--output", str(out / "o.mp4"), "--save-boxes",
            str(out / "b.txt"), "--budget", "min", "--threads", "1", "--device", "cpu"]
    proc = start_demo(tmp_path, zoo, argv)
    try:
        started = wait_for(lambda: any(p.name.startswith(".o.mp4.") and p != stale and size(p) > 0
                                       for p in out.iterdir()), proc)
        assert started and not stale.exists(), "the demo never started writing, or kept the stale temporary"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    if proc.returncode == 0:  # stopped in the loop: what was written is kept, complete
        assert "(SIGTERM)" in stdout and video_frames(out / "o.mp4")[1] >= 1
    else:  # stopped before the first frame was written: nothing is kept
        assert proc.returncode == 143 and stderr.strip().splitlines()[-1].startswith("terminated")
        assert not any(out.iterdir())


def size(path) -> int:
    """A file's size, 0 when it is gone (temporaries come and go while a run is polled)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def dead_pid() -> int:
    """A pid no process can have (Linux pids stay below 2**22): a writer that is gone."""
    return 2**22 + 1


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as done:
        demo.main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    for word in ("--webcam", "--budget", "--init", "--save-boxes", "space pauses", "re-selects",
                 "B2TRACK_MODELS"):
        assert word in text


def start_xvfb():
    """Start Xvfb on a free display it picks itself (-displayfd); returns (process, ':N')."""
    read_fd, write_fd = os.pipe()
    command = ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"]
    proc = subprocess.Popen(command, pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    while not number.endswith(b"\n") and select.select([read_fd], [], [], 15)[0]:
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    if not number.strip().isdigit():
        proc.kill()
        pytest.fail("Xvfb did not report a display number")
    return proc, f":{number.decode().strip()}"


@needs_shared
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt-get install xvfb)")
def test_windowed_run_under_xvfb(tmp_path, zoo):
    xvfb, display = start_xvfb()
    try:
        env = {**os.environ, "DISPLAY": display, "B2TRACK_MODELS": str(zoo), "PYTHONUNBUFFERED": "1"}
        env.pop("WAYLAND_DISPLAY", None)
        boxes = tmp_path / "boxes.txt"
        argv = ["--images", str(TENNIS), "--init", TENNIS_INIT, "--max-frames", "10", "--budget", "min",
                "--save-boxes", str(boxes), "--threads", "1"]
        done = subprocess.run([sys.executable, str(REPO / "demo.py"), *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180, check=False)
    finally:
        xvfb.kill()
        xvfb.wait()
    assert done.returncode == 0, done.stderr
    assert "10 frames" in done.stdout and "in a window" in done.stdout
    assert read_boxes(boxes).shape == (10, 4)
