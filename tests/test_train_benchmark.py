"""benchmarks/startup.py's train rows measure what they say: the CPU of the step's whole process tree, up to a
line Axolotl really logs."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _startup():
    spec = importlib.util.spec_from_file_location("startup_benchmark", ROOT / "benchmarks" / "startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A parent that waits while its child burns CPU: the parent's own rusage says nothing of it yet.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.process_time() + 0.6\\n"
                          "while time.process_time() < end: pass\\nprint('burnt', flush=True)\\ntime.sleep(60)"],
                         stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), child.pid, flush=True)
child.wait()
"""


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
def test_the_tree_cpu_counts_a_live_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        said, child = parent.stdout.readline().split()
        assert said == "burnt"
        assert _startup().tree_cpu_seconds(parent.pid) >= 0.6
    finally:
        if child is not None:
            os.kill(int(child), signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_the_data_line_is_one_axolotl_logs():
    spec = importlib.util.find_spec("axolotl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("axolotl is not installed")
    sft = Path(next(iter(spec.submodule_search_locations))) / "utils" / "data" / "sft.py"
    assert _startup().TRAIN_DATA_LINE in sft.read_text(encoding="utf-8")
