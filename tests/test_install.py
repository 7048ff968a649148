"""A wheel carries what a first run needs: the zoo, the masks and the sample generator.

Built from a copy of the repository (``pip wheel --no-build-isolation``) and installed into a temporary
folder (``pip install --target``), never into the shared environment; every check runs from a temporary
working directory with only that folder on PYTHONPATH, so nothing can come from the checkout.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from test_zoo import make_zoo

from tracker import sample

REPO = Path(__file__).resolve().parents[1]
NOT_SOURCES = {".git", ".venv", ".ci-venv", "build", "dist", "runs", "__pycache__", ".pytest_cache",
               ".ruff_cache"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    """What a source tree copy leaves out: VCS, environments, build outputs, caches, videos."""
    return {n for n in names if n in NOT_SOURCES or n.endswith((".egg-info", ".mp4", ".so"))}


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the folder it is installed in)."""
    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    if pip.returncode:
        pytest.skip("pip is not available in this environment")
    try:
        setuptools = tuple(int(p) for p in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        setuptools = (0, 0)
    if setuptools < (77, 0):
        pytest.skip("building without isolation needs setuptools >= 77 (pyproject's build-system) here")
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_ignore)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(root / "wheels"),
         str(src), cwd=root)
    wheel = next((root / "wheels").glob("b2track-*.whl"))
    _pip("install", "--no-deps", "--no-index", "-q", "--target", str(root / "site"), str(wheel), cwd=root)
    return wheel, root / "site"


def _env(site: Path, **extra: str) -> dict[str, str]:
    """The environment of an installed run: only ``site`` on PYTHONPATH, no zoo override, no display."""
    env = {k: v for k, v in os.environ.items() if k not in ("B2TRACK_MODELS", "DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "PYTHONPATH": str(site), **extra}


def test_wheel_contains_the_zoo_the_masks_and_the_sample(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    models = {p.name for p in (REPO / "models").iterdir() if p.suffix in (".safetensors", ".json")}
    masks = {p.name for p in (REPO / "masks").glob("*.json")}
    assert models and masks
    assert {f"tracker/_shipped/models/{n}" for n in models} <= names
    assert {f"tracker/_shipped/masks/{n}" for n in masks} <= names
    assert {"tracker/sample.py", "tracker/synth.py", "tracker/shipped.py", "demo.py"} <= names


def test_zoo_loads_from_the_installed_wheel_and_b2track_models_overrides(installed, tmp_path):
    _, site = installed
    own = make_zoo(tmp_path / "own_zoo", budgets=("0.3",))
    code = ("import os, sys, tracker, tracker.zoo as z; t = z.load_zoo_tracker(0.3); "
            "print(tracker.__file__, z.find_zoo(0.3), t.name); "
            "os.environ['B2TRACK_MODELS'] = sys.argv[1]; print(z.find_zoo(0.3))")
    done = subprocess.run([sys.executable, "-c", code, str(own)], cwd=tmp_path, env=_env(site),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    module, model, name, overridden = done.stdout.split()
    assert Path(module).is_relative_to(site) and name == "resnet_b0.3"
    assert Path(model) == site / "tracker" / "_shipped" / "models" / "resnet_b0.3.safetensors"
    assert Path(overridden) == own / "resnet_b0.3.safetensors"


def test_two_installed_demos_started_at_once_share_one_uncorrupted_sample(installed, tmp_path):
    """``python -m demo`` from any folder; both build the missing sample at the same time."""
    _, site = installed
    env = _env(site, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    runs = {"a": ["--max-frames", "4"],  # no source: the sample, headless (no display), default --output
            "b": ["--sample", "--no-display", "--max-frames", "4", "--output", "b.mp4"]}
    procs = {}
    for key, args in runs.items():
        (tmp_path / key).mkdir()
        procs[key] = subprocess.Popen([sys.executable, "-m", "demo", "--threads", "1", *args],
                                      cwd=tmp_path / key, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    outputs = {key: proc.communicate(timeout=300) for key, proc in procs.items()}
    for key, (out, err) in outputs.items():
        assert procs[key].returncode == 0, err
        assert "Traceback" not in err and "error" not in err.lower(), err
        assert "success AUC" in out and "precision@20px" in out and "mean FPS" in out, out
    assert "wrote b2track_sample.mp4" in outputs["a"][0] and (tmp_path / "a" / "b2track_sample.mp4").is_file()
    assert (tmp_path / "b" / "b.mp4").is_file()
    cache = tmp_path / "xdg" / "b2track"
    assert sample.is_valid(cache / "sample_s0")
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
