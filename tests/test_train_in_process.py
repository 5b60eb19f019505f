"""`axolotl train --launcher python` in the step's own interpreter keeps what the child process gave:
Axolotl's failures are 1, an interrupted run is never recorded as finished, and a stop signal
ends the process as it ended the child."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_train_support import PROJECT_ROOT, TINY_CONFIG, offline_env

from steps import train as train_step
from steps.contract import EXIT_FAILURE, EXIT_INTERRUPTED
from steps.training import in_process

LOG = logging.getLogger("test_train_in_process")


def _axolotl(monkeypatch, behaviour) -> list[dict]:
    """Axolotl's `do_cli` replaced by `behaviour(config)`; returns what each call saw."""
    calls: list[dict] = []

    def do_cli(config: str) -> None:
        calls.append({"config": config, "argv": list(sys.argv)})
        behaviour(config)

    monkeypatch.setattr(in_process, "_axolotl_train_cli", lambda: do_cli)
    return calls


def test_axolotl_sees_none_of_the_steps_flags_and_a_finished_training_is_0(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["steps/train.py", "--config", "x.yaml", "--debug"])
    calls = _axolotl(monkeypatch, lambda config: None)
    assert in_process.train_in_process(tmp_path / "axolotl.yaml", LOG) == 0
    # do_cli reads `axolotl train`'s own flags (--debug, --shard, ...) from sys.argv
    assert calls == [{"config": str(tmp_path / "axolotl.yaml"), "argv": ["steps/train.py"]}]
    assert sys.argv == ["steps/train.py", "--config", "x.yaml", "--debug"]


def test_a_failure_inside_axolotl_is_1_with_its_traceback_whatever_its_type(monkeypatch, tmp_path, caplog):
    """A missing file inside Axolotl is its failure: exit 1, as the child's crash was; the step's own
    mapping would call it bad input (2)."""
    def crash(config):
        raise FileNotFoundError("/mnt/hf-cache/model.safetensors")

    _axolotl(monkeypatch, crash)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert in_process.train_in_process(tmp_path / "axolotl.yaml", LOG) == EXIT_FAILURE
    assert "axolotl train failed" in caplog.text and "FileNotFoundError" in caplog.text
    assert caplog.records[-1].exc_info is not None


@pytest.mark.parametrize("code, expected", [(0, EXIT_INTERRUPTED), (None, EXIT_INTERRUPTED), (3, 3)])
def test_axolotl_exiting_early_is_never_success(monkeypatch, tmp_path, code, expected):
    def leave(config):
        raise SystemExit(code)

    _axolotl(monkeypatch, leave)
    assert in_process.train_in_process(tmp_path / "axolotl.yaml", LOG) == expected


@pytest.mark.axolotl
def test_an_interrupted_run_that_saved_its_adapter_is_not_recorded_as_finished(monkeypatch, tmp_path):
    """Axolotl's SIGINT handler saves the weights so far to output_dir and exits 0; the child's 0 used to
    be taken for a finished run (done.json, and a rerun skipped training)."""
    dataset = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": 0, "question": "What is 2 + 3?", "answer": "5"}]), dataset)
    output = tmp_path / "run" / "output"

    def interrupted(config):
        output.mkdir(parents=True, exist_ok=True)
        (output / "adapter_config.json").write_text("{}")
        (output / "adapter_model.safetensors").write_bytes(b"weights")
        raise SystemExit(0)

    _axolotl(monkeypatch, interrupted)
    code = train_step.train(TINY_CONFIG, base_model="google/gemma-2-2b", dataset=dataset, run_dir=tmp_path / "run",
                            launcher="python", overrides='{"max_steps": 2}')
    assert code == EXIT_INTERRUPTED
    assert not (tmp_path / "run" / "done.json").exists()


# A step process training in process, its Axolotl replaced by a wait: stopped as the kubelet stops a pod.
STOPPED_STEP = """
import logging, sys, time
from pathlib import Path
from steps.training import in_process
def do_cli(config):
    print("ready", flush=True)
    time.sleep(120)
in_process._axolotl_train_cli = lambda: do_cli
sys.exit(in_process.train_in_process(Path("axolotl.yaml"), logging.getLogger("steps.train")))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_training_process_at_once_as_it_ended_the_child(signum):
    step = subprocess.Popen([sys.executable, "-c", STOPPED_STEP], cwd=PROJECT_ROOT, env=offline_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert step.stdout.readline().strip() == "ready"
        step.send_signal(signum)
        assert step.wait(timeout=60) == -signum  # a pod's container reports 128 + signum
    finally:
        step.kill()
    assert f"stopped by {signal.Signals(signum).name} during training" in step.stderr.read()


def test_the_step_module_imports_nothing_heavy_because_spawned_data_workers_import_it_again():
    """datasets' save_to_disk(num_proc=N) starts its workers with `spawn`, and each imports the main module
    again: steps.train now, where it was axolotl.cli.main (torch, transformers, Axolotl: seconds each)."""
    heavy = ("torch", "transformers", "axolotl", "datasets", "pyarrow", "peft")
    result = subprocess.run([sys.executable, "-c", "import sys, steps.train; print(' '.join(sorted(sys.modules)))"],
                            cwd=PROJECT_ROOT, env=offline_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [name for name in heavy if name in result.stdout.split()] == []
