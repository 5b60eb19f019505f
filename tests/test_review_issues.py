"""Gaps the review of issues 10 and 11 found on the integrated tree, one test per gap, named for the item."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steps.mmlu_pro.history import write_run
from workflows.cli import app


def _history(folder: Path) -> Path:
    row = {"time": "2026-01-01T03:00:00+00:00", "run": "run-1", "model": "org/a", "role": "baseline",
           "source": "org/a", "model_revision": "rev-1", "subject": "math", "n": 20, "correct": 7,
           "accuracy": 7 / 20, "settings_hash": "h1"}
    write_run(folder, "run-1", [row])
    return folder


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink_to_precious(path: Path) -> Path:
    (path.parent / "precious.png").write_text("keep me")
    path.symlink_to(path.parent / "precious.png")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _under_a_file(path: Path) -> Path:
    path.write_text("a file")
    return path / "trend.png"


@pytest.mark.parametrize(("make", "says"), [(_fifo, "is a FIFO"), (_symlink_to_precious, "is a symlink"),
                                            (_directory, "is a directory"), (_under_a_file, "is a file, not a directory")])
def test_issue11_item7_history_plot_that_is_not_a_regular_file_is_one_line(tmp_path, make, says):
    """`tunebench history --plot` was the one output option still ending in a StepInputError traceback."""
    history = _history(tmp_path / "history")
    plot = make(tmp_path / "plot")
    result = CliRunner().invoke(app, ["history", str(history), "--plot", str(plot)])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.output
    assert "Traceback" not in result.output
    if (tmp_path / "precious.png").exists():
        assert (tmp_path / "precious.png").read_text() == "keep me"


def test_issue11_item7_history_plot_to_a_new_path_is_written(tmp_path):
    history = _history(tmp_path / "history")
    result = CliRunner().invoke(app, ["history", str(history), "--plot", str(tmp_path / "trend.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "trend.png").read_bytes().startswith(b"\x89PNG")


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("keep me")
    return tmp_path / "file"


def _under_a_file_workdir(tmp_path: Path) -> Path:
    return _a_file(tmp_path) / "work"


def _a_fifo(tmp_path: Path) -> Path:
    return _fifo(tmp_path / "fifo")


@pytest.mark.parametrize(("make", "says"), [
    (_a_file, "exists and is not a folder"), (_a_fifo, "exists and is not a folder"),
    (_under_a_file_workdir, "cannot be created: Not a directory")])
def test_issue11_item10_run_with_a_workdir_that_is_not_a_folder_is_one_line(tmp_path, make, says):
    """`tunebench run --workdir FILE` ended in a FileExistsError / NotADirectoryError traceback."""
    workdir = make(tmp_path)
    manifest = Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "smoke.yaml"
    result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir)])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --workdir {workdir}") and says in lines[0], result.output
    if (tmp_path / "file").exists():
        assert (tmp_path / "file").read_text() == "keep me"
