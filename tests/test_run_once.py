"""tests/fixtures/run_once.py: what the xdist workers of one `make test` share is built by one of them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.run_once import DONE, build_once, run_folder

TESTS = Path(__file__).resolve().parent
# A build that takes a while and counts itself in a log, as a worker's fixture would run it.
BUILD_IN_A_PROCESS = """
import pathlib, sys, time
from fixtures.run_once import build_once

def build(folder):
    with open(sys.argv[2], "a") as log:
        log.write("built\\n")
    time.sleep(1)
    (folder / "model").write_text("weights")

print((build_once(pathlib.Path(sys.argv[1]), build) / "model").read_text())
"""


def test_processes_that_ask_at_once_share_one_build(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    processes = [subprocess.Popen([sys.executable, "-c", BUILD_IN_A_PROCESS, str(tmp_path / "assets"), str(log)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [process.communicate(timeout=120) for process in processes]
    assert [stdout for stdout, _ in results] == ["weights\n"] * 3, [stderr for _, stderr in results]
    assert log.read_text() == "built\n"


def test_a_build_that_raised_is_redone_from_an_empty_folder(tmp_path: Path) -> None:
    def broken(folder: Path) -> None:
        (folder / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(tmp_path / "assets", broken)
    folder = build_once(tmp_path / "assets", lambda folder: (folder / "whole").write_text("y"))
    assert sorted(path.name for path in folder.iterdir()) == [DONE, "whole"]
    # and once done, it is not built again
    assert build_once(folder, broken) == folder


class _WorkerTemp:
    def __init__(self, basetemp: Path) -> None:
        self.basetemp = basetemp

    def getbasetemp(self) -> Path:
        return self.basetemp


def test_the_workers_of_one_run_share_the_folder_their_own_ones_are_in(monkeypatch, tmp_path: Path) -> None:
    worker_temp = _WorkerTemp(tmp_path / "popen-gw1")  # where pytest-xdist puts worker gw1's basetemp
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert run_folder(worker_temp) == tmp_path  # type: ignore[arg-type]
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert run_folder(worker_temp) == tmp_path / "popen-gw1"  # type: ignore[arg-type]
