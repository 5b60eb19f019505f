"""Axolotl's processes on the pod's CPUs: the pod's torch thread count reaches the trainer, shared
among the node's worker processes, and training starts no inter-op threads beyond it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from steps.training.launch import child_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("processes, expected", [(1, "12"), (3, "4"), (5, "2"), (16, "1")])
def test_the_pods_threads_are_shared_among_the_nodes_trainers(processes, expected):
    env = child_env({"PATH": "/usr/bin", "OMP_NUM_THREADS": "12", "MKL_NUM_THREADS": "12"}, processes=processes)
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) == (expected, expected)


def test_no_thread_count_set_stays_unset_and_one_that_is_no_count_is_left_alone():
    assert "OMP_NUM_THREADS" not in child_env({"PATH": "/usr/bin"}, processes=4)
    assert child_env({"PATH": "/usr/bin", "OMP_NUM_THREADS": "auto"}, processes=4)["OMP_NUM_THREADS"] == "auto"


# The trainer as train.py starts it (run_streaming with child_env), here a few real AdamW steps.
TRAINER = r"""
import json, os, torch
def threads(): return len(os.listdir("/proc/self/task"))
before = threads()
model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
optimizer = torch.optim.AdamW(model.parameters())
for _ in range(3):
    model(torch.randn(16, 32)).pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
print(json.dumps({"intra_op": torch.get_num_threads(), "before": before, "after": threads(),
                  "omp": os.environ.get("OMP_NUM_THREADS")}))
"""
STEP = ("import sys; from steps.training.launch import run_streaming, child_env; "
        "sys.exit(run_streaming([sys.executable, '-c', sys.argv[1]], child_env(processes=2)))")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_the_trainer_gets_its_share_of_the_pods_threads_and_training_starts_no_inter_op_pool():
    """torch has no variable for its inter-op pool (sized from the node's cores, not the pod's
    limit); what keeps it off the pod's CPUs is that eager training never starts it."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", STEP, TRAINER], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["omp"] == "2" and report["intra_op"] == 2
    # The intra-op pool (2, started by the first parallel op) may appear; an inter-op pool would
    # add a thread per core of the machine on top.
    assert report["after"] - report["before"] <= report["intra_op"], report
