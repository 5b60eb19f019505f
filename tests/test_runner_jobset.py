"""`tunebench run` emulating a JobSet: N local processes started together, failure policy and group restarts.

The nodes here are small Python programs (`python -c`); the real training across nodes runs in
tests/test_smoke_2node_e2e.py.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from test_runner_support import pods, py, run, task, workflow, workspace

from workflows.runner import ManifestError
from workflows.argo.jobset import without_jobset_cleanup
from workflows.runner.jobset import expand_var_refs

pytestmark = pytest.mark.timeout(180)

# Each node records its start (index, rendezvous env, attempt) and then runs BEHAVIOUR, a snippet
# that sees `index`, `attempt` (how many groups were started before, counted on the volume) and `ws`.
NODE = """
import json, os, sys, time, pathlib
ws = pathlib.Path('/workspace'); index = int(sys.argv[1]); port = sys.argv[2]
starts = ws / f'starts-{index}.jsonl'
attempt = len(starts.read_text().splitlines()) if starts.exists() else 0
with starts.open('a') as log:
    log.write(json.dumps({'index': index, 'addr': os.environ['MASTER_ADDR'], 'port': port, 'pid': os.getpid(),
                          'env_index': os.environ['JOB_COMPLETION_INDEX'], 'attempt': attempt}) + chr(10))
def started(i):
    path = ws / f'starts-{i}.jsonl'
    return path.exists() and len(path.read_text().splitlines()) > attempt
def peers_started():  # before failing, so both nodes of this group have recorded their start
    while not (started(0) and started(1)):
        time.sleep(0.05)
"""


def jobset_template(behaviour: str, nodes: int = 2, max_restarts: int = 1, exit_codes=(2, 3, 4),
                    deadline: int | None = None, **extra) -> dict:
    container = py("node", NODE + behaviour)["container"]
    container.update(name="train", args=[*container["args"], "$(JOB_COMPLETION_INDEX)", "$(MASTER_PORT)"],
                     env=[{"name": "MASTER_ADDR", "value": "run-train-node-0-0.run-train"},
                          {"name": "MASTER_PORT", "value": "29500"}])
    job = {"completionMode": "Indexed", "parallelism": nodes, "completions": nodes, "backoffLimit": 0,
           "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
               "containerName": "train", "operator": "In", "values": list(exit_codes)}}]},
           "template": {"spec": {"restartPolicy": "Never", "containers": [container],
                                 "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "ws"}}]}}}
    if deadline is not None:
        job["activeDeadlineSeconds"] = deadline
    manifest = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "{{workflow.name}}-train"},
                "spec": {"failurePolicy": {"maxRestarts": max_restarts, "rules": [
                    {"name": "verdicts", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy", "DeadlineExceeded"]}]},
                    "replicatedJobs": [{"name": "node", "replicas": 1, "template": {"spec": job}}]}}
    return {"name": "train-jobset", "resource": {
        "action": "apply", "setOwnerReference": True, "manifest": yaml.safe_dump(manifest),
        "successCondition": "status.terminalState == Completed", "failureCondition": "status.terminalState == Failed"},
        **extra}


def _starts(result, index: int) -> list[dict]:
    path = workspace(result) / f"starts-{index}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(tmp_path: Path, template: dict, **spec):
    after = py("after", "import pathlib; pathlib.Path('/workspace/after').touch()")
    return run(workflow([template, after], [task("train", template["name"]), task("after", "after", "train")], **spec),
               tmp_path)


def test_every_node_starts_together_with_its_index_and_node_0_at_localhost(tmp_path):
    result = _run(tmp_path, jobset_template("time.sleep(0.5)", nodes=3))
    assert result.succeeded, result.message
    starts = [_starts(result, index) for index in range(3)]
    assert [[s["env_index"] for s in node] for node in starts] == [["0"], ["1"], ["2"]]
    assert {s["addr"] for node in starts for s in node} == {"127.0.0.1"}
    ports = {s["port"] for node in starts for s in node}
    assert len(ports) == 1 and ports != {"29500"}  # $(MASTER_PORT) expanded, to a free port of this run
    assert (workspace(result) / "after").exists()
    log = result.workdir / pods(result)["train"]["log"]
    assert "JobSet test-" in log.read_text() and "3 node(s) started" in log.read_text()
    assert "Completed: all 3 nodes succeeded" in log.read_text()
    for index in range(3):  # each node's own log, as `argo logs` shows each pod
        assert "==== train:" in (log.parent / f"{log.stem}.node-{index}.log").read_text()
    assert json.loads((result.workdir / "state.json").read_text())["processes"] == {}  # nothing left for a resume to stop


def test_a_node_killed_mid_run_restarts_the_whole_group_which_then_finishes(tmp_path):
    # First group: node 1 dies by a signal (a lost node); node 0 would wait for its peer for ever.
    behaviour = ("if attempt == 0 and index == 1:\n    peers_started(); os.kill(os.getpid(), 9)\n"
                 "if attempt == 0:\n    time.sleep(600)\n")
    started = time.monotonic()
    result = _run(tmp_path, jobset_template(behaviour, max_restarts=1))
    assert result.succeeded, result.message
    assert time.monotonic() - started < 60  # the waiting peer was stopped, not waited for
    assert [[s["attempt"] for s in _starts(result, index)] for index in range(2)] == [[0, 1], [0, 1]]
    first_pids = [_starts(result, index)[0]["pid"] for index in range(2)]
    for pid in first_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_when_the_restarts_are_spent_the_jobset_and_the_task_fail(tmp_path):
    result = _run(tmp_path, jobset_template("if index == 0:\n    peers_started(); sys.exit(1)\ntime.sleep(600)",
                                                max_restarts=2))
    assert not result.succeeded
    assert [len(_starts(result, index)) for index in range(2)] == [3, 3]  # the first run and two restarts
    train = pods(result)["train"]
    assert train["phase"] == "Failed"
    assert "JobSet Failed" in train["message"] and "maxRestarts 2 reached" in train["message"]
    assert not (workspace(result) / "after").exists()


def test_a_verdict_exit_code_fails_the_jobset_at_once(tmp_path):
    result = _run(tmp_path, jobset_template("if index == 1:\n    peers_started(); sys.exit(2)\ntime.sleep(600)",
                                                max_restarts=3))
    assert not result.succeeded
    assert [len(_starts(result, index)) for index in range(2)] == [1, 1]
    assert "podFailurePolicy FailJob" in pods(result)["train"]["message"]


def test_the_jobs_deadline_fails_the_jobset_without_a_restart(tmp_path):
    result = _run(tmp_path, jobset_template("time.sleep(600)", deadline=2, max_restarts=3))
    assert not result.succeeded
    assert [len(_starts(result, index)) for index in range(2)] == [1, 1]
    assert "DeadlineExceeded" in pods(result)["train"]["message"]


def test_the_templates_deadline_bounds_every_restart_together(tmp_path):
    started = time.monotonic()
    result = _run(tmp_path, jobset_template("time.sleep(600)", max_restarts=5, activeDeadlineSeconds=3))
    assert not result.succeeded and time.monotonic() - started < 60
    assert [len(_starts(result, index)) for index in range(2)] == [1, 1]


@pytest.mark.parametrize("change, message", [
    (lambda t: t["resource"].update(manifest=yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "x"}})),
     "a 'ConfigMap' (v1) manifest: the local runner emulates only JobSet"),
    (lambda t: t["resource"].update(action="create"), "action 'create': the local runner emulates `apply` of a JobSet"),
    (lambda t: t["resource"].pop("successCondition"), "no successCondition"),
])
def test_any_other_resource_is_refused_by_name_before_anything_runs(tmp_path, change, message):
    template = jobset_template("pass")
    change(template)
    with pytest.raises(ManifestError, match="resource template 'train-jobset': " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        _run(tmp_path, template)
    assert not (tmp_path / "volumes" / "workspace" / "starts-0.jsonl").exists()


def test_an_exit_handler_that_only_deletes_the_jobset_has_nothing_to_do_locally():
    delete = {"name": "delete", "resource": {"action": "delete", "flags": ["--ignore-not-found"], "manifest": yaml.safe_dump(
        {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "x"}})}}
    handler = {"name": "exit-handler", "dag": {"tasks": [{"name": "d", "template": "delete",
                                                          "when": "{{workflow.status}} != Succeeded"}]}}
    manifest = workflow([jobset_template("pass"), delete, handler], [task("train", "train-jobset")], onExit="exit-handler")
    stripped = without_jobset_cleanup(manifest)
    assert "onExit" not in stripped["spec"]
    assert [t["name"] for t in stripped["spec"]["templates"]] == ["train-jobset", "main"]
    other = copy.deepcopy(manifest)
    other["spec"]["templates"].append(py("notify", "pass"))
    other["spec"]["templates"][2]["dag"]["tasks"].append({"name": "n", "template": "notify"})
    assert without_jobset_cleanup(other) == other  # any other exit handler stays, and is refused by name


def test_a_node_that_cannot_start_is_the_tasks_error_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    template = jobset_template("pass")
    manifest = yaml.safe_load(template["resource"]["manifest"])
    container = manifest["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}})
    template["resource"]["manifest"] = yaml.safe_dump(manifest)
    result = _run(tmp_path, template)
    assert not result.succeeded
    assert pods(result)["train"]["message"].startswith("env HF_TOKEN comes from Secret 'hf-token'")


def test_args_expand_like_the_kubelet():
    env = {"JOB_COMPLETION_INDEX": "1"}
    assert expand_var_refs("--node-rank=$(JOB_COMPLETION_INDEX)", env) == "--node-rank=1"
    assert expand_var_refs("$(UNSET)", env) == "$(UNSET)"


def test_stopping_the_run_stops_every_node(tmp_path):
    """Ctrl-C (the runner interrupted) ends the group: no node outlives the run."""
    import subprocess
    import sys

    manifest = workflow([jobset_template("time.sleep(600)")], [task("train", "train-jobset")])
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(manifest))
    code = ("import sys, yaml; from pathlib import Path; from workflows.runner import RunOptions, run_workflow; "
            f"run_workflow(yaml.safe_load(open({str(path)!r})), RunOptions(workdir=Path({str(tmp_path / 'wd')!r}), "
            f"cwd=Path({str(tmp_path)!r}), kill_grace_s=1.0))")
    # SIGINT as at a terminal: a shell running pytest in the background would hand the runner an ignored SIGINT
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    starts = [tmp_path / "wd" / "volumes" / "workspace" / f"starts-{i}.jsonl" for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(s.exists() and s.read_text().strip() for s in starts) and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [json.loads(s.read_text().splitlines()[0])["pid"] for s in starts]
    runner.send_signal(signal.SIGINT)
    runner.wait(timeout=60)
    time.sleep(0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
