"""The bad-input contract of every CLI (docs/design.md section 8), over every module with ``__main__``.

The modules are found by scanning the source tree, not listed by hand, so a new CLI is covered the day it
is written. Each one, run as ``python -m MODULE``, must answer an invalid option value and (where it has
one) a missing required argument with exactly one stderr line and exit code 2; in-process, every typed
option of its parser must refuse its bad values the same way.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backbones.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"tests", "build", "dist", "runs", "node_modules"}
CANDIDATES = ("banana", "-1", "nan", "1e400", "0", "99999999999")  # tried in turn until a type refuses one
UNKNOWN_OPTION = "--no-such-option"


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _importable(rel: Path) -> bool:
    """Top-level modules and modules in folders below (packages, or namespace packages such as experiments/)."""
    folder = REPO
    for part in rel.parts[:-1]:
        folder = folder / part
        if part.startswith(".") or part in SKIPPED_DIRS:  # other folders import as (namespace) packages
            return False
    return True


def cli_modules() -> dict[str, str]:
    """Every module of the project with an ``if __name__ == "__main__":`` block, and its source."""
    found = {}
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if not _importable(rel):
            continue  # a __main__.py keeps its name: ``python -m pkg.__main__`` runs what ``-m pkg`` runs
        source = path.read_text(encoding="utf-8")
        if any(_is_main_guard(node) for node in ast.parse(source, filename=str(path)).body):
            found[".".join(rel.with_suffix("").parts)] = source
    return found


SOURCES = cli_modules()
MODULES = list(SOURCES)


def has_parser(module_name: str) -> bool:
    """Whether the module builds an argparse parser in a ``main(argv)`` (else only the subprocess runs)."""
    return "ArgumentParser" in SOURCES[module_name] and "def main(" in SOURCES[module_name]


class _Captured(Exception):
    """Raised in place of parsing: carries the parser a CLI's ``main`` built."""


def capture_parser(module_name: str) -> argparse.ArgumentParser:
    """The parser ``MODULE.main`` builds, caught at its first ``parse_known_args`` (nothing else runs)."""
    module = importlib.import_module(module_name)
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, args=None, namespace=None):
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        module.main([])
    except _Captured as caught:
        return caught.args[0]
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"{module_name}.main([]) never parsed its arguments")


def bad_values(parser: argparse.ArgumentParser) -> list[list[str]]:
    """For every option with a type or choices: ``[option, value]`` with a value the option must refuse."""
    found = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or (action.type is None and action.choices is None):
            continue
        for value in CANDIDATES:
            if action.choices is not None and value not in action.choices:
                found.append([action.option_strings[-1], value])
                break
            try:
                action.type(value)
            except Exception:  # noqa: BLE001 - any refusal counts: argparse or run_cli reports it
                found.append([action.option_strings[-1], value])
                break
    return found


def has_required(parser: argparse.ArgumentParser) -> bool:
    return any(a.required for a in parser._actions) or any(
        g.required for g in parser._mutually_exclusive_groups)


def unknown_option(parser: argparse.ArgumentParser) -> list[str]:
    """For a CLI without typed options: every required argument given (untyped: any text does), plus an
    option that does not exist (argparse reports missing arguments before unknown ones)."""
    argv = []
    groups = [g._group_actions[0] for g in parser._mutually_exclusive_groups if g.required]
    for action in [a for a in parser._actions if a.required] + groups:
        argv += [action.option_strings[0], "x"] if action.option_strings else ["x"]
    return [UNKNOWN_OPTION, *argv]


def cases(module_name: str) -> list[tuple[str, list[str]]]:
    """(what, argv) pairs to run as ``python -m MODULE``: one invalid value, and no arguments at all."""
    if not has_parser(module_name):  # a CLI without a parser must still refuse what it does not know
        return [("invalid value", [UNKNOWN_OPTION])]
    parser = capture_parser(module_name)
    values = bad_values(parser)
    found = [("invalid value", values[0] if values else unknown_option(parser))]
    if has_required(parser):
        found.append(("missing required argument", []))
    return found


def run_module(module_name: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", module_name, *argv], cwd=cwd, env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory) -> dict[str, list]:
    """Every module's cases, run concurrently (the start-up imports dominate) in an empty folder."""
    cwd = tmp_path_factory.mktemp("cli")
    planned = [(name, what, argv) for name in MODULES for what, argv in cases(name)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = list(pool.map(lambda job: run_module(job[0], job[2], cwd), planned))
    results: dict[str, list] = {name: [] for name in MODULES}
    for (name, what, argv), proc in zip(planned, done, strict=True):
        results[name].append((what, argv, proc))
    assert not any(cwd.iterdir()), "a refused command wrote something"
    return results


def test_the_scan_finds_the_known_clis():
    for name in ("demo", "eval.benchmark", "tracker.curate", "tracker.train", "mixbin.search",
                 "mixbin.baseline", "mixbin.train", "mixbin.report"):
        assert name in MODULES


@pytest.mark.parametrize("module_name", MODULES)
def test_bad_input_is_one_stderr_line_and_exit_2(module_name, subprocess_results):
    for what, argv, proc in subprocess_results[module_name]:
        lines = proc.stderr.strip().splitlines()
        shown = (f"python -m {module_name} {' '.join(argv)} ({what}): exit {proc.returncode}, "
                 f"stderr:\n{proc.stderr}")
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, shown
        assert (argv[0] if argv else "required") in lines[0], shown


@pytest.mark.parametrize("module_name", MODULES)
def test_every_typed_option_refuses_its_bad_values(module_name, capsys):
    if not has_parser(module_name):
        pytest.skip(f"{module_name} builds no argparse parser in main(argv): only its command line is tried")
    values = bad_values(capture_parser(module_name))
    main = importlib.import_module(module_name).main
    for argv in values:
        try:
            code = run_cli(main, argv)
        except SystemExit as done:  # a plain argparse parser exits by itself
            code = done.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and argv[0] in err[0], (argv, err)


# ---------------------------------------------------------------- no output may be an input


def _files(tmp_path: Path) -> dict[str, Path]:
    """Input files of every kind (their content does not matter: the runs must stop before reading)."""
    made = {"video": tmp_path / "clip.avi", "frames": tmp_path / "frames",
            "ckpt": tmp_path / "net.safetensors", "data": tmp_path / "data",
            "split": tmp_path / "data" / "split.txt", "runs": tmp_path / "runs",
            "mask": tmp_path / "runs" / "r.json"}
    made["frames"].mkdir()
    made["data"].mkdir()
    made["runs"].mkdir()
    for key in ("video", "ckpt", "split", "mask"):
        made[key].write_bytes(b"input " + key.encode())
    made["ckpt"].with_suffix(".json").write_text("{}")
    (made["frames"] / "f1.png").write_bytes(b"input frame")
    return made


DEMO = ["--init", "1,1,5,5", "--checkpoint", "{ckpt}"]
OUTPUT_IS_INPUT = {
    "demo --save-boxes is the video": ("demo", [*DEMO, "--video", "{video}", "--save-boxes", "{video}"]),
    "demo --output is the video": ("demo", [*DEMO, "--video", "{video}", "--output", "{video}"]),
    "demo --save-boxes is a frame": ("demo", [*DEMO, "--images", "{frames}",
                                              "--save-boxes", "{frames}/f1.png"]),
    "demo --save-boxes is the checkpoint's sidecar": ("demo", [*DEMO, "--video", "{video}",
                                                               "--save-boxes", "{data}/../net.json"]),
    "benchmark --out is the data root": ("eval.benchmark", ["--tracker", "static", "--data", "{data}",
                                                            "--out", "{data}"]),
    "benchmark --out holds the checkpoint": ("eval.benchmark", ["--tracker", "{ckpt}", "--data", "{data}",
                                                                "--out", "{ckpt}/.."]),
    "benchmark --out is the split": ("eval.benchmark", ["--tracker", "static", "--data", "{data}", "--split",
                                                        "{split}", "--out", "{split}"]),
    "curate --out is the data root": ("tracker.curate", ["--data", "{data}", "--out", "{data}"]),
    "curate --out is inside the data root": ("tracker.curate", ["--data", "{data}", "--out", "{data}/cur"]),
    "search --out is --init-from's sidecar": ("mixbin.search", ["--data", "{data}", "--backbone", "resnet",
                                                                "--budget", "0.5", "--init-from", "{ckpt}",
                                                                "--out", "{data}/../net.json"]),
    "search --weights-out is --init-from": ("mixbin.search", ["--data", "{data}", "--backbone", "resnet",
                                                              "--budget", "0.5", "--init-from", "{ckpt}",
                                                              "--out", "{runs}/new.json",
                                                              "--weights-out", "{ckpt}"]),
    "baseline --out is --init-from's sidecar": ("mixbin.baseline", ["--method", "first", "--data", "{data}",
                                                                    "--backbone", "resnet", "--budget", "0.5",
                                                                    "--init-from", "{ckpt}",
                                                                    "--out", "{data}/../net.json"]),
    "train --out holds --init-from": ("mixbin.train", ["--data", "{data}", "--backbone", "resnet",
                                                       "--init-from", "{ckpt}", "--out", "{ckpt}/.."]),
    "report --out is a run it reads": ("mixbin.report", ["{runs}", "--out", "{mask}"]),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_IS_INPUT))
def test_no_output_may_be_an_input(case, tmp_path, capsys):
    module_name, template = OUTPUT_IS_INPUT[case]
    made = _files(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [arg.format(**made) for arg in template]
    assert run_cli(importlib.import_module(module_name).main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("input" in err[0] or "inside the data root" in err[0]), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing touched


READ_ONLY_OUTPUT = {
    "demo": [*DEMO, "--video", "{video}", "--save-boxes", "{ro}/b.txt"],
    "eval.benchmark": ["--tracker", "static", "--data", "{data}", "--out", "{ro}/report"],
    "tracker.curate": ["--data", "{data}", "--out", "{ro}/curated"],
    "mixbin.search": ["--data", "{data}", "--backbone", "resnet", "--budget", "0.5", "--out", "{ro}/m.json"],
    "mixbin.baseline": ["--method", "first", "--data", "{data}", "--backbone", "resnet", "--budget", "0.5",
                        "--out", "{ro}/m.json"],
    "mixbin.train": ["--data", "{data}", "--backbone", "resnet", "--out", "{ro}/run"],
    "mixbin.report": ["{runs}", "--out", "{ro}/table.md"],
}


@pytest.mark.parametrize("module_name", sorted(READ_ONLY_OUTPUT))
def test_out_in_a_read_only_folder_is_refused_before_work(module_name, tmp_path, capsys, monkeypatch):
    made = _files(tmp_path)
    made["ro"] = tmp_path / "ro"
    made["ro"].mkdir()
    real_access = os.access  # root may write anywhere: the folder is made read-only for the check itself
    monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and Path(p) != made["ro"])
    argv = [arg.format(**made) for arg in READ_ONLY_OUTPUT[module_name]]
    assert run_cli(importlib.import_module(module_name).main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0], err
    assert list(made["ro"].iterdir()) == []
