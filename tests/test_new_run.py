"""`tunebench run --new-run`: a new workflow (a new name from metadata.generateName) in a workdir that
holds a run, on the same volumes, so the history of a re-benchmark can hold two runs of one pipeline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_runner_support import pods, py, run, task, workflow, workspace
from typer.testing import CliRunner

from workflows.cli import app
from workflows.runner import RunnerError

pytestmark = pytest.mark.timeout(120)
# Each run writes under RUN = runs/<workflow name>/ and appends its name to a file shared by every run.
RECORD = ("import sys, os; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); open(sys.argv[1], 'w').write('x'); "
          "open('/workspace/history.txt', 'a').write(sys.argv[2] + chr(10))")


def _manifest(**metadata: str) -> dict:
    manifest = workflow([py("record", RECORD, ("path", "name"))],
                        [task("a", "record", args={"path": "/workspace/runs/{{workflow.name}}/out",
                                                   "name": "{{workflow.name}}"})])
    if metadata:
        manifest["metadata"] = metadata
    return manifest


def test_a_new_run_gets_a_new_name_reuses_nothing_and_keeps_the_earlier_runs_files(tmp_path: Path) -> None:
    first = run(_manifest(), tmp_path)
    resumed = run(_manifest(), tmp_path)
    assert resumed.workflow_name == first.workflow_name and pods(resumed)["a"]["reused"]

    second = run(_manifest(), tmp_path, new_run=True)
    assert second.succeeded and second.workflow_name != first.workflow_name
    assert second.workflow_name.startswith("test-")
    assert not pods(second)["a"]["reused"]
    runs = workspace(second) / "runs"
    assert sorted(p.name for p in runs.iterdir()) == sorted([first.workflow_name, second.workflow_name])
    assert (workspace(second) / "history.txt").read_text().split() == [first.workflow_name, second.workflow_name]
    # the workdir now holds the new run: running again resumes it
    assert run(_manifest(), tmp_path).workflow_name == second.workflow_name


def test_a_new_run_in_an_empty_workdir_is_just_a_first_run(tmp_path: Path) -> None:
    assert run(_manifest(), tmp_path / "w", new_run=True).succeeded


def test_a_workflow_with_a_fixed_name_cannot_start_a_second_run_and_nothing_changes(tmp_path: Path) -> None:
    manifest = _manifest(name="fixed")
    run(manifest, tmp_path)
    before = (tmp_path / "state.json").read_text()
    with pytest.raises(RunnerError, match=r"--new-run: the workflow's metadata.name 'fixed' is fixed.*generateName"):
        run(manifest, tmp_path, new_run=True)
    assert (tmp_path / "state.json").read_text() == before


def test_the_cli_option(tmp_path: Path) -> None:
    manifest = tmp_path / "wf.yaml"
    manifest.write_text(yaml.safe_dump(_manifest(), sort_keys=False))
    workdir = tmp_path / "w"
    names = []
    for extra in ([], ["--new-run"]):
        result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        names.append(json.loads((workdir / "state.json").read_text())["workflow"]["name"])
    assert names[0] != names[1]

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump(_manifest(name="fixed"), sort_keys=False))
    assert CliRunner().invoke(app, ["run", str(fixed), "--workdir", str(tmp_path / "f"), "-q"]).exit_code == 0
    refused = CliRunner().invoke(app, ["run", str(fixed), "--workdir", str(tmp_path / "f"), "--new-run"])
    assert refused.exit_code == 2 and refused.output.strip().startswith("error: --new-run:")
    assert len(refused.output.strip().splitlines()) == 1


def test_two_runs_of_the_pipeline_on_one_workdir_leave_two_runs_in_the_history_and_a_trend(tmp_path: Path) -> None:
    """What `make demo-trend` does, with the heavy steps replaced by stand-ins (pipeline_stand_ins.py)."""
    from test_verdict import PROJECT_ROOT, _pipeline

    first = run(_pipeline(), tmp_path, cwd=PROJECT_ROOT)
    second = run(_pipeline(), tmp_path, cwd=PROJECT_ROOT, new_run=True)
    assert first.succeeded and second.succeeded, second.message
    history = workspace(second) / "history" / "mmlu-pro"
    assert sorted(p.name for p in history.glob("*.parquet")) == sorted(
        f"{r.workflow_name}.parquet" for r in (first, second))
    summary = workspace(second) / "runs" / second.workflow_name / "summary"
    assert (summary / "trend.png").read_bytes().startswith(b"\x89PNG")
    assert not (workspace(first) / "runs" / first.workflow_name / "summary" / "trend.png").exists()
