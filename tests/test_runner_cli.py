"""`tunebench run`: exit codes, progress output, the failed task's log tail, the summary at the end;
and the project's own pipelines render to manifests the runner accepts as they are."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_runner_support import APPEND, OK, py, task, workflow
from typer.testing import CliRunner

from workflows.cli import app
from workflows.config import load_pipeline
from workflows.render import manifests
from workflows.runner import load_workflow

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


def _write(path: Path, manifest: dict) -> Path:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def test_success_prints_the_table_and_the_summary(tmp_path: Path) -> None:
    summary = ("import os; d = '/workspace/runs/{{workflow.name}}/summary'; os.makedirs(d, exist_ok=True); "
               "open(d + '/summary.md', 'w').write('| model | math |' + chr(10) + '|---|---|' + chr(10) + '| tiny | 0.5 |'); "
               "open(d + '/scores.png', 'wb').write(b'png')")
    manifest = _write(tmp_path / "wf.yaml", workflow([py("agg", summary)], [task("aggregate", "agg")]))
    result = runner.invoke(app, ["run", str(manifest), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "aggregate" in result.output and "Succeeded" in result.output
    assert "| tiny | 0.5 |" in result.output
    assert "summary.md" in result.output and "scores.png" in result.output
    assert (tmp_path / "w" / "timeline.json").exists()


def test_failure_exits_1_and_shows_the_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('loading the model'); print('CUDA out of memory', file=sys.stderr); sys.exit(1)"
    manifest = _write(tmp_path / "wf.yaml", workflow([py("boom", code), py("ok", OK)],
                                                     [task("train", "boom"), task("after", "ok", "train")]))
    result = runner.invoke(app, ["run", str(manifest), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert "train" in result.output and "Failed" in result.output
    assert "CUDA out of memory" in result.output  # the tail of the failed task's log
    assert "task 'train' failed: exit code 1" in result.output
    assert "run the same command again" in result.output


def test_wiring_bug_exits_2_with_the_reference(tmp_path: Path) -> None:
    manifest = workflow([py("make", OK, outputs={"v": "/workspace/v"}), py("use", APPEND, ("file", "text"))],
                        [task("a", "make"), task("b", "use", "a", args={"file": "x", "text": "{{tasks.a.outputs.parameters.nope}}"})])
    result = runner.invoke(app, ["run", str(_write(tmp_path / "wf.yaml", manifest)), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "{{tasks.a.outputs.parameters.nope}}" in result.output
    assert "task 'b'" in result.output


def test_params_and_bad_config(tmp_path: Path) -> None:
    manifest = _write(tmp_path / "wf.yaml", workflow([py("use", APPEND, ("file", "text"))],
                                                     [task("a", "use", args={"file": "x", "text": "{{workflow.parameters.t}}"})],
                                                     parameters={"t": "one"}))
    result = runner.invoke(app, ["run", str(manifest), "-w", str(tmp_path / "w"), "-p", "t=two", "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / "volumes" / "workspace" / "x").read_text() == "two\n"

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Not_A_Name\n")
    result = runner.invoke(app, ["run", str(bad), "-w", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "problem" in result.output


def test_fail_then_resume_from_the_cli(tmp_path: Path) -> None:
    gate = "import sys, pathlib; sys.exit(0 if pathlib.Path('/workspace/fixed').exists() else 1)"
    manifest = _write(tmp_path / "wf.yaml", workflow([py("gate", gate), py("use", APPEND, ("file", "text"))],
                                                     [task("first", "use", args={"file": "ran", "text": "first"}),
                                                      task("gate", "gate", "first")]))
    args = ["run", str(manifest), "--workdir", str(tmp_path / "w")]
    assert runner.invoke(app, args).exit_code == 1
    (tmp_path / "w" / "volumes" / "workspace" / "fixed").write_text("")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reused" in result.output
    assert (tmp_path / "w" / "volumes" / "workspace" / "ran").read_text() == "first\n"


@pytest.mark.parametrize("config", sorted(Path(__file__).resolve().parents[1].glob("configs/pipelines/*.yaml")),
                         ids=lambda p: p.name)
def test_project_pipelines_are_runnable_manifests(config: Path) -> None:
    manifest = manifests(load_pipeline(config), "workflow")[0]
    workflow_model = load_workflow(manifest)  # raises on any problem or unsupported feature
    assert workflow_model.entrypoint == "pipeline"
    assert workflow_model.warnings == []


def test_sigterm_ends_the_tasks_processes_and_a_rerun_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    slow = ("import os, time, pathlib; pathlib.Path('/workspace/pid').write_text(str(os.getpid())); "
            "time.sleep(0 if pathlib.Path('/workspace/fast').exists() else 60)")
    manifest = _write(tmp_path / "wf.yaml", workflow([py("slow", slow), py("ok", OK)],
                                                     [task("first", "ok"), task("slow", "slow", "first")]))
    command = [sys.executable, "-m", "workflows.cli", "run", str(manifest), "--workdir", str(tmp_path / "w")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    pid_file = tmp_path / "w" / "volumes" / "workspace" / "pid"
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and process.poll() is None, process.communicate()[0]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # the task's process was ended too
    assert "interrupted" in output

    (tmp_path / "w" / "volumes" / "workspace" / "fast").write_text("")
    result = runner.invoke(app, ["run", str(manifest), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "first reused" in result.output


def test_the_table_says_why_a_ready_task_waits_in_a_fail_fast_dag(tmp_path: Path) -> None:
    """A failFast DAG starts its next tasks once all it began have ended (docs/local-runner.md): while `slow` runs,
    `after` (whose dependency `quick` is done) shows why it has not started."""
    from rich.console import Console

    from workflows.runner import RunOptions, run_workflow
    from workflows.runner.progress import ConsoleReporter

    notes: list[str] = []

    class Recorder(ConsoleReporter):
        def task_ended(self, task) -> None:  # type: ignore[no-untyped-def]
            super().task_ended(task)
            if task.key == "quick" and self.run is not None:
                table = self.summary_table(self.run)
                notes.append("".join(str(cell) for cell in table.columns[4].cells))

    manifest = workflow([py("ok", OK), py("slow", "import time; time.sleep(1)")],
                        [task("quick", "ok"), task("slow", "slow"), task("after", "ok", "quick")])
    reporter = Recorder(Console(file=open(tmp_path / "out.txt", "w"), width=200), live=False)
    result = run_workflow(manifest, RunOptions(workdir=tmp_path / "w", cwd=tmp_path, parallelism=4), reporter)
    assert result.succeeded
    assert notes and "waits for the running tasks of its DAG to end (failFast)" in notes[0]
