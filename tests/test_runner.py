"""The local runner on small hand-written manifests: DAG semantics, retries, resume, parallelism, volumes, env."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_runner_support import APPEND, FAIL, OK, most_at_once, phases, pods, py, run, task, workflow, workspace

from workflows.runner import ManifestError, RunnerError

pytestmark = pytest.mark.timeout(120)


# --- order, parameters, outputs --------------------------------------------------------------

def test_dag_order_parameters_and_output_parameters(tmp_path: Path) -> None:
    manifest = workflow(
        [
            py("make", "import sys, os; os.makedirs('/workspace/out', exist_ok=True); "
                       "open('/workspace/out/value.txt', 'w').write(sys.argv[1] + '-made' + chr(10))",
               ("seed",), {"value": "/workspace/out/value.txt"}),
            py("use", APPEND, ("file", "text")),
        ],
        [
            task("a", "make", args={"seed": "{{workflow.parameters.seed}}"}),
            task("b", "use", "a", args={"file": "log.txt", "text": "{{tasks.a.outputs.parameters.value}}|{{workflow.name}}"}),
            task("c", "use", "a && b", args={"file": "log.txt", "text": "c saw {{tasks.a.status}}"}),
        ],
        parameters={"seed": "s1"},
    )
    result = run(manifest, tmp_path)
    assert result.succeeded, result.message
    lines = (workspace(result) / "log.txt").read_text().splitlines()
    # a single trailing newline of an output file is dropped, as Argo does
    assert lines == [f"s1-made|{result.workflow_name}", "c saw Succeeded"]
    assert result.workflow_name.startswith("test-") and len(result.workflow_name) == len("test-") + 5


def test_parameter_override_and_enum(tmp_path: Path) -> None:
    manifest = workflow([py("use", APPEND, ("file", "text"))],
                        [task("a", "use", args={"file": "x", "text": "{{workflow.parameters.mode}}"})],
                        parameters={"mode": "fail"})
    manifest["spec"]["arguments"]["parameters"][0]["enum"] = ["fail", "warn"]
    result = run(manifest, tmp_path / "one", parameters={"mode": "warn"})
    assert (workspace(result) / "x").read_text() == "warn\n"
    with pytest.raises(ManifestError, match="'mode' = 'loud' is not one of fail, warn"):
        run(manifest, tmp_path / "two", parameters={"mode": "loud"})
    with pytest.raises(ManifestError, match="unknown workflow parameter 'nope'"):
        run(manifest, tmp_path / "three", parameters={"nope": "1"})


def test_template_input_defaults_and_missing_inputs(tmp_path: Path) -> None:
    template = py("use", APPEND, ("file", "text"))
    template["inputs"]["parameters"][1]["default"] = "from-default"
    manifest = workflow([template], [task("a", "use", args={"file": "x"})])
    result = run(manifest, tmp_path)
    assert (workspace(result) / "x").read_text() == "from-default\n"

    template = py("use", APPEND, ("file", "text"))
    with pytest.raises(ManifestError, match="input parameter 'text' of template 'use' is not supplied"):
        run(workflow([template], [task("a", "use", args={"file": "x"})]), tmp_path / "b")


# --- wiring bugs fail before anything runs -----------------------------------------------------

def test_reference_to_missing_output_fails_before_running(tmp_path: Path) -> None:
    manifest = workflow(
        [py("make", OK, outputs={"value": "/workspace/v"}), py("use", APPEND, ("file", "text"))],
        [task("a", "make"), task("b", "use", "a", args={"file": "x", "text": "{{tasks.a.outputs.parameters.valeu}}"})],
    )
    with pytest.raises(ManifestError) as error:
        run(manifest, tmp_path)
    message = str(error.value)
    assert "task 'b' of dag 'main'" in message
    assert "{{tasks.a.outputs.parameters.valeu}}" in message
    assert "has no output parameter 'valeu' (its outputs: value)" in message
    assert not (tmp_path / "logs").exists()  # nothing ran


def test_reference_to_a_task_that_is_not_an_ancestor(tmp_path: Path) -> None:
    manifest = workflow(
        [py("make", OK, outputs={"value": "/workspace/v"}), py("use", APPEND, ("file", "text"))],
        [task("a", "make"), task("b", "use", args={"file": "x", "text": "{{tasks.a.outputs.parameters.value}}"})],
    )
    with pytest.raises(ManifestError, match="task 'a' is not a dependency of task 'b'.*add it to depends"):
        run(manifest, tmp_path)


def test_every_wiring_problem_is_listed(tmp_path: Path) -> None:
    manifest = workflow(
        [py("use", APPEND, ("file", "text"))],
        [
            task("a", "use", "ghost", args={"file": "x", "text": "{{workflow.parameters.missing}}"}),
            task("b", "nope"),
            task("c", "use", args={"file": "{{item}}", "text": "{{inputs.parameters.zzz}}"}),
        ],
    )
    with pytest.raises(ManifestError) as error:
        run(manifest, tmp_path)
    message = str(error.value)
    assert "depends on 'ghost', which is not a task of this dag" in message
    assert "the workflow has no parameter 'missing'" in message
    assert "uses template 'nope', which does not exist" in message
    assert "task 'c' has no withItems, withParam or withSequence, so there is no item" in message
    assert "dag template 'main' has no input parameter 'zzz'" in message


def test_cycle_and_template_reference_errors(tmp_path: Path) -> None:
    bad = py("use", "print('{{inputs.parameters.other}} {{tasks.x.outputs.parameters.y}}')", ("file",))
    manifest = workflow([bad], [task("a", "use", "b", args={"file": "1"}), task("b", "use", "a", args={"file": "2"})])
    with pytest.raises(ManifestError) as error:
        run(manifest, tmp_path)
    message = str(error.value)
    assert "dependency cycle: a -> b -> a" in message or "dependency cycle: b -> a -> b" in message
    assert "template 'use' has no input parameter 'other'" in message
    assert "a container template cannot see other tasks" in message


def test_runtime_reference_to_output_of_skipped_task(tmp_path: Path) -> None:
    manifest = workflow(
        [py("make", "open('/workspace/v','w').write('1')", outputs={"value": "/workspace/v"}),
         py("use", APPEND, ("file", "text"))],
        [task("a", "make", when="false == true"),
         task("b", "use", "a", args={"file": "x", "text": "{{tasks.a.outputs.parameters.value}}"})],
    )
    result = run(manifest, tmp_path)
    assert not result.succeeded
    assert phases(result) == {"a": "Skipped", "b": "Error"}
    # Argo v4.1: a whole-argument reference to a skipped task's output without any default is an absent optional
    assert "references an absent optional: task 'a' was skipped or omitted" in pods(result)["b"]["message"]


@pytest.mark.parametrize("template, feature", [
    ({"name": "s", "script": {"image": "x", "source": "print(1)"}}, "'script' in template 's'"),
    ({"name": "s", "steps": [[{"name": "a", "template": "x"}]]}, "'steps' in template 's'"),
    ({"name": "s", "container": {"image": "x", "command": ["true"]}, "sidecars": [{"name": "x"}]}, "'sidecars' in template 's'"),
    ({"name": "s", "container": {"image": "x", "command": ["true"]}, "memoize": {"key": "k"}}, "'memoize' in template 's'"),
    ({"name": "s", "container": {"image": "x", "command": ["true"]}, "synchronization": {}}, "'synchronization' in template 's'"),
    ({"name": "s", "container": {"image": "x", "command": ["true"]},
      "outputs": {"artifacts": [{"name": "a", "path": "/tmp/a"}]}}, "'artifacts' in template 's' outputs"),
    ({"name": "s", "container": {"image": "x"}}, "a container without command in template 's'"),
    ({"name": "s", "container": {"image": "x", "command": ["true"], "envFrom": [{}]}}, "'envFrom' in template 's' container"),
])
def test_unsupported_features_are_named(tmp_path: Path, template: dict, feature: str) -> None:
    manifest = workflow([template], [task("a", "s")])
    with pytest.raises(ManifestError, match="not supported by the local runner") as error:
        run(manifest, tmp_path)
    assert feature in str(error.value)


def test_unsupported_workflow_and_task_features(tmp_path: Path) -> None:
    manifest = workflow([py("t", OK)], [task("a", "t", onExit="t"), task("b", "t", hooks={})], onExit="t")
    manifest["spec"]["volumes"].append({"name": "cfg", "configMap": {"name": "x"}})
    with pytest.raises(ManifestError) as error:
        run(manifest, tmp_path)
    message = str(error.value)
    assert "'onExit' in spec" in message
    assert "'onExit' in task 'a' of dag 'main'" in message
    assert "'hooks' in task 'b' of dag 'main'" in message
    assert "volume source configMap in spec.volumes.cfg" in message


def test_cluster_only_fields_are_accepted(tmp_path: Path) -> None:
    template = py("t", OK, nodeSelector={"gpu": "a100"}, tolerations=[{"key": "x", "operator": "Exists"}],
                  securityContext={"runAsUser": 1000},
                  container={"resources": {"limits": {"nvidia.com/gpu": "8", "memory": "2Ti"}},
                             "imagePullPolicy": "Always", "securityContext": {"privileged": False}})
    manifest = workflow([template], [task("a", "t")], serviceAccountName="sa", podGC={"strategy": "OnPodSuccess"},
                        ttlStrategy={"secondsAfterCompletion": 10}, securityContext={"runAsUser": 1000})
    assert run(manifest, tmp_path).succeeded


# --- depends, when, continueOn, failFast ---------------------------------------------------------------

def test_depends_results_and_dag_phase(tmp_path: Path) -> None:
    manifest = workflow(
        [py("fail", FAIL, ("code",)), py("ok", OK)],
        [
            task("a", "fail", args={"code": "1"}),
            task("on-fail", "ok", "a.Failed"),
            task("on-success", "ok", "a.Succeeded"),
            task("not-ok", "ok", "!a.Succeeded && (a.Failed || a.Errored)"),
            task("after-omitted", "ok", "on-success.Omitted"),
        ],
    )
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Failed", "on-fail": "Succeeded", "on-success": "Omitted",
                              "not-ok": "Succeeded", "after-omitted": "Succeeded"}
    # every leaf's branch ends Succeeded: the failure was handled
    assert result.succeeded


def test_omitted_leaf_inherits_the_failure(tmp_path: Path) -> None:
    manifest = workflow([py("fail", FAIL, ("code",)), py("ok", OK)],
                        [task("a", "fail", args={"code": "3"}), task("b", "ok", "a")])
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Failed", "b": "Omitted"}
    assert result.phase == "Failed"
    assert "task 'a' failed: exit code 3" in result.message


def test_continue_on_and_legacy_dependencies(tmp_path: Path) -> None:
    manifest = workflow(
        [py("fail", FAIL, ("code",)), py("ok", OK)],
        [
            task("a", "fail", args={"code": "1"}, continueOn={"failed": True}),
            task("b", "ok", dependencies=["a"]),
            task("c", "fail", args={"code": "1"}),
            task("d", "ok", dependencies=["c"]),
        ],
        dag={"failFast": False},
    )
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Failed", "b": "Succeeded", "c": "Failed", "d": "Omitted"}
    assert result.phase == "Failed"


def test_when_false_skips_and_dependents_proceed(tmp_path: Path) -> None:
    manifest = workflow(
        [py("use", APPEND, ("file", "text"))],
        [
            task("upload", "use", when="{{workflow.parameters.enabled}} == true", args={"file": "x", "text": "up"}),
            task("quoted", "use", when="'{{workflow.parameters.name}}' != 'b c'", args={"file": "x", "text": "q"}),
            task("number", "use", when="{{workflow.parameters.n}} >= 2.5", args={"file": "x", "text": "n"}),
            task("after", "use", "upload && quoted && number", args={"file": "x", "text": "after"}),
        ],
        parameters={"enabled": "false", "name": "b c", "n": "3"},
    )
    result = run(manifest, tmp_path)
    assert phases(result) == {"upload": "Skipped", "quoted": "Skipped", "number": "Succeeded", "after": "Succeeded"}
    assert result.succeeded
    assert (workspace(result) / "x").read_text().splitlines() == ["n", "after"]


def test_invalid_when_is_a_task_error(tmp_path: Path) -> None:
    manifest = workflow([py("ok", OK)], [task("a", "ok", when="{{workflow.parameters.v}} == my-value")],
                        parameters={"v": "my-value"})
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Error"}
    assert "arithmetic needs numbers" in pods(result)["a"]["message"]


def test_fail_fast_stops_new_tasks_but_lets_running_ones_finish(tmp_path: Path) -> None:
    tasks = [
        task("a", "fail", args={"code": "1"}),
        task("b1", "slow"),
        task("b2", "slow", "b1"),
    ]
    templates = [py("fail", FAIL, ("code",)), py("slow", "import time; time.sleep(0.6)")]
    result = run(workflow(templates, tasks), tmp_path / "fast")
    assert phases(result) == {"a": "Failed", "b1": "Succeeded", "b2": "Pending"}
    assert result.phase == "Failed" and result.message == "task 'a' failed: exit code 1"

    result = run(workflow(templates, tasks, dag={"failFast": False}), tmp_path / "slow")
    assert phases(result) == {"a": "Failed", "b1": "Succeeded", "b2": "Succeeded"}
    assert result.phase == "Failed"


# --- fan-out -------------------------------------------------------------------------------------------

def test_with_items_objects_and_aggregated_outputs(tmp_path: Path) -> None:
    write = ("import sys, os; os.makedirs('/workspace/o', exist_ok=True); "
             "open('/workspace/o/' + sys.argv[1], 'w').write(sys.argv[1] + ':' + sys.argv[2])")
    manifest = workflow(
        [py("each", write, ("name", "n"), {"out": "/workspace/o/{{inputs.parameters.name}}"}),
         py("use", APPEND, ("file", "text"))],
        [
            task("each", "each", withItems=[{"name": "x", "n": 1}, {"name": "y", "n": 2.5}],
                 args={"name": "{{item.name}}", "n": "{{item.n}}"}),
            task("sum", "use", "each", args={"file": "agg", "text": "{{tasks.each.outputs.parameters.out}}"}),
        ],
    )
    result = run(manifest, tmp_path)
    assert result.succeeded, result.message
    assert json.loads((workspace(result) / "agg").read_text()) == ["x:1", "y:2.5"]
    assert set(pods(result)) == {"each(0:n:1,name:x)", "each(1:n:2.5,name:y)", "sum"}


def test_with_param_and_with_sequence_and_item_when(tmp_path: Path) -> None:
    plan = "import json; json.dump(['a', 'b', 'c'], open('/workspace/plan.json', 'w'))"
    manifest = workflow(
        [py("plan", plan, outputs={"items": "/workspace/plan.json"}), py("use", APPEND, ("file", "text"))],
        [
            task("plan", "plan"),
            task("fan", "use", "plan", withParam="{{tasks.plan.outputs.parameters.items}}",
                 when="{{item}} != b", args={"file": "fan", "text": "{{item}}"}),
            task("seq", "use", withSequence={"count": "3", "start": "1", "format": "n%02d"},
                 args={"file": "seq", "text": "{{item}}"}),
        ],
    )
    result = run(manifest, tmp_path, parallelism=1)
    assert result.succeeded
    assert (workspace(result) / "fan").read_text().splitlines() == ["a", "c"]
    assert (workspace(result) / "seq").read_text().splitlines() == ["n01", "n02", "n03"]
    assert pods(result)["fan(1:b)"]["phase"] == "Skipped"


def test_empty_with_param_is_skipped_and_dependents_run(tmp_path: Path) -> None:
    manifest = workflow(
        [py("plan", "open('/workspace/p.json', 'w').write('[]')", outputs={"items": "/workspace/p.json"}),
         py("use", APPEND, ("file", "text"))],
        [task("plan", "plan"),
         task("fan", "use", "plan", withParam="{{tasks.plan.outputs.parameters.items}}", args={"file": "f", "text": "{{item}}"}),
         task("after", "use", "fan", args={"file": "f", "text": "after"})],
    )
    result = run(manifest, tmp_path)
    assert phases(result) == {"plan": "Succeeded", "fan": "Skipped", "after": "Succeeded"}
    assert result.succeeded


def test_with_param_that_is_not_a_list(tmp_path: Path) -> None:
    manifest = workflow(
        [py("plan", "open('/workspace/p.json', 'w').write('{\"a\": 1}')", outputs={"items": "/workspace/p.json"}),
         py("use", APPEND, ("file", "text"))],
        [task("plan", "plan"),
         task("fan", "use", "plan", withParam="{{tasks.plan.outputs.parameters.items}}", args={"file": "f", "text": "{{item}}"})],
    )
    result = run(manifest, tmp_path)
    assert phases(result)["fan"] == "Error"
    assert "withParam value could not be parsed as a JSON list" in result.message


def _overlap(result, prefix: str) -> int:
    return most_at_once([(p["attempts"][0]["start"], p["attempts"][0]["end"])
                         for n, p in pods(result).items() if n.startswith(prefix)])


def test_fan_out_runs_concurrently_up_to_the_parallelism(tmp_path: Path) -> None:
    sleep = py("sleep", "import time; time.sleep(0.6)", ("i",))
    manifest = workflow([sleep], [task("fan", "sleep", withSequence={"count": "6"}, args={"i": "{{item}}"})])
    started = time.time()
    result = run(manifest, tmp_path / "three", parallelism=3)
    elapsed = time.time() - started
    assert result.succeeded
    assert _overlap(result, "fan(") == 3
    assert elapsed < 6 * 0.6  # concurrent, not one after another

    manifest = workflow([sleep], [task("fan", "sleep", withSequence={"count": "3"}, args={"i": "{{item}}"})])
    result = run(manifest, tmp_path / "one", parallelism=1)
    assert _overlap(result, "fan(") == 1


def test_dag_and_workflow_parallelism_limit(tmp_path: Path) -> None:
    sleep = py("sleep", "import time; time.sleep(0.4)", ("i",))
    manifest = workflow([sleep], [task("fan", "sleep", withSequence={"count": "4"}, args={"i": "{{item}}"})])
    manifest["spec"]["templates"][-1]["parallelism"] = 2
    result = run(manifest, tmp_path / "dag", parallelism=8)
    assert _overlap(result, "fan(") == 2

    manifest = workflow([sleep], [task("fan", "sleep", withSequence={"count": "3"}, args={"i": "{{item}}"})], parallelism=1)
    result = run(manifest, tmp_path / "wf", parallelism=8)
    assert _overlap(result, "fan(") == 1


def test_nested_dag_template(tmp_path: Path) -> None:
    inner = {"name": "inner", "inputs": {"parameters": [{"name": "word"}]},
             "dag": {"tasks": [task("one", "use", args={"file": "n", "text": "{{inputs.parameters.word}}-1"}),
                               task("two", "use", "one", args={"file": "n", "text": "{{inputs.parameters.word}}-2"})]}}
    manifest = workflow([py("use", APPEND, ("file", "text")), inner],
                        [task("outer", "inner", withItems=["x"], args={"word": "{{item}}"})])
    result = run(manifest, tmp_path)
    assert result.succeeded, result.message
    assert (workspace(result) / "n").read_text().splitlines() == ["x-1", "x-2"]
    assert set(phases(result)) == {"outer", "outer.0.one", "outer.0.two"}


# --- retries, deadlines -------------------------------------------------------------------------------

FLAKY = ("import sys, pathlib; p = pathlib.Path('/workspace/count'); n = int(p.read_text()) + 1 if p.exists() else 1; "
         "p.write_text(str(n)); sys.exit(0 if n > int(sys.argv[1]) else int(sys.argv[2]))")


def test_failed_task_is_retried_per_its_retry_strategy(tmp_path: Path) -> None:
    flaky = py("flaky", FLAKY, ("fails", "code"), retryStrategy={
        "limit": 3, "retryPolicy": "Always",
        "expression": "lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 1",
        "backoff": {"duration": "30s", "factor": 2, "maxDuration": "15m"}})
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "2", "code": "1"})]), tmp_path / "ok")
    assert result.succeeded
    attempts = pods(result)["a"]["attempts"]
    assert [a["status"] for a in attempts] == ["Failed", "Failed", "Succeeded"]
    log = (result.workdir / "logs" / "a.log").read_text()
    assert "attempt 1/4" in log and "attempt 3/4" in log

    # the expression refuses exit code 2 (a verdict, not a network error): no retry
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "2", "code": "2"})]), tmp_path / "verdict")
    assert len(pods(result)["a"]["attempts"]) == 1 and result.phase == "Failed"

    # limit 1: two attempts, then the task fails
    flaky["retryStrategy"] = {"limit": "1"}
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "5", "code": "1"})]), tmp_path / "limit")
    assert len(pods(result)["a"]["attempts"]) == 2 and result.phase == "Failed"
    assert "no retries left of 1" in pods(result)["a"]["message"]


def test_retry_policy_on_error_does_not_retry_failures(tmp_path: Path) -> None:
    flaky = py("flaky", FLAKY, ("fails", "code"), retryStrategy={"limit": 2, "retryPolicy": "OnError"})
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "1", "code": "1"})]), tmp_path / "fail")
    assert len(pods(result)["a"]["attempts"]) == 1

    # a process killed by a signal exits 128+n and is Failed, as in Argo: OnError does not retry it
    killer = py("killer", "import os, signal, pathlib; p = pathlib.Path('/workspace/k'); first = not p.exists(); "
                          "p.write_text('x'); os.kill(os.getpid(), signal.SIGKILL) if first else None",
                retryStrategy={"limit": 2, "retryPolicy": "OnError"})
    result = run(workflow([killer], [task("a", "killer")]), tmp_path / "error")
    attempts = pods(result)["a"]["attempts"]
    assert [(a["status"], a["exit_code"]) for a in attempts] == [("Failed", 137)]


def test_backoff_is_honoured_and_scaled(tmp_path: Path) -> None:
    flaky = py("flaky", FLAKY, ("fails", "code"),
               retryStrategy={"limit": 2, "backoff": {"duration": "1", "factor": 2}})
    started = time.time()
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "2", "code": "1"})]), tmp_path / "a",
                 backoff_scale=0.2)
    assert result.succeeded
    assert time.time() - started >= (1 + 2) * 0.2  # 1s then 2s, scaled
    assert len(pods(result)["a"]["attempts"]) == 3

    # maxDuration: the second wait (2s) would pass 2.5s of nominal time, so no third attempt
    flaky["retryStrategy"] = {"limit": 5, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "2.5s"}}
    result = run(workflow([flaky], [task("a", "flaky", args={"fails": "9", "code": "1"})]), tmp_path / "b")
    assert len(pods(result)["a"]["attempts"]) == 2
    assert "maxDuration" in pods(result)["a"]["message"]


def test_active_deadline_kills_the_process(tmp_path: Path) -> None:
    slow = py("slow", "import time; time.sleep(30)", activeDeadlineSeconds=1)
    started = time.time()
    result = run(workflow([slow], [task("a", "slow")]), tmp_path)
    assert time.time() - started < 10
    pod = pods(result)["a"]
    assert pod["phase"] == "Failed"
    assert "activeDeadlineSeconds (1 s) exceeded" in pod["message"]
    assert pod["attempts"][0]["exit_code"] == 143


def test_workflow_deadline_stops_everything(tmp_path: Path) -> None:
    slow = py("slow", "import time; time.sleep(30)")
    manifest = workflow([slow, py("ok", OK)], [task("a", "slow"), task("b", "ok", "a")], activeDeadlineSeconds=1)
    started = time.time()
    result = run(manifest, tmp_path)
    assert time.time() - started < 10
    assert result.phase == "Failed"
    assert phases(result)["a"] == "Failed"


def test_missing_output_file_is_an_error(tmp_path: Path) -> None:
    manifest = workflow([py("make", OK, outputs={"value": "/workspace/never"})], [task("a", "make")])
    result = run(manifest, tmp_path)
    assert pods(result)["a"]["phase"] == "Error"
    assert "output parameter 'value'" in pods(result)["a"]["message"]

    template = py("make", OK, outputs={"value": "/workspace/never"})
    template["outputs"]["parameters"][0]["valueFrom"]["default"] = "fallback"
    assert run(workflow([template], [task("a", "make")]), tmp_path / "default").succeeded


def test_command_that_cannot_start(tmp_path: Path) -> None:
    template = {"name": "t", "container": {"image": "x", "command": ["/no/such/binary"]}}
    result = run(workflow([template], [task("a", "t")]), tmp_path)
    assert phases(result) == {"a": "Failed"}  # Argo: a container that cannot start is Failed, not Error
    assert "could not start '/no/such/binary'" in pods(result)["a"]["message"]


# --- resume ------------------------------------------------------------------------------------------

def test_rerun_after_a_failure_resumes(tmp_path: Path) -> None:
    gate = "import sys, pathlib; sys.exit(0 if pathlib.Path('/workspace/fixed').exists() else 1)"
    manifest = workflow(
        [py("use", APPEND, ("file", "text")), py("gate", gate)],
        [
            task("first", "use", args={"file": "ran", "text": "first"}),
            task("fan", "use", "first", withItems=["x", "y"], args={"file": "ran", "text": "{{item}}"}),
            task("gate", "gate", "first"),
            task("last", "use", "fan && gate", args={"file": "ran", "text": "last"}),
        ],
    )
    first = run(manifest, tmp_path)
    assert first.phase == "Failed"
    assert sorted((workspace(first) / "ran").read_text().split()) == ["first", "x", "y"]

    (workspace(first) / "fixed").write_text("")
    second = run(manifest, tmp_path)
    assert second.succeeded
    assert second.workflow_name == first.workflow_name  # same RUN folder
    # first and the fan-out were not run again; the gate and `last` were
    assert sorted((workspace(second) / "ran").read_text().split()) == ["first", "last", "x", "y"]
    reused = {name for name, pod in pods(second).items() if pod["reused"]}
    assert reused == {"first", "fan(0:x)", "fan(1:y)"}

    third = run(manifest, tmp_path, resume=False)
    assert not any(pod["reused"] for pod in pods(third).values())


def test_resume_reruns_a_task_whose_inputs_changed_and_its_dependents(tmp_path: Path) -> None:
    def manifest(text: str) -> dict:
        return workflow([py("use", APPEND, ("file", "text"))],
                        [task("a", "use", args={"file": "ran", "text": text}),
                         task("b", "use", "a", args={"file": "ran", "text": "b"}),
                         task("c", "use", args={"file": "ran", "text": "c"})])
    run(manifest("a1"), tmp_path)
    result = run(manifest("a2"), tmp_path)
    assert (workspace(result) / "ran").read_text().split().count("b") == 2  # b reran after a
    assert (workspace(result) / "ran").read_text().split().count("c") == 1  # c was reused


def test_workdir_of_another_workflow_is_refused(tmp_path: Path) -> None:
    run(workflow([py("ok", OK)], [task("a", "ok")]), tmp_path)
    other = workflow([py("ok", OK)], [task("a", "ok")])
    other["metadata"] = {"generateName": "other-"}
    with pytest.raises(RunnerError, match="holds the run 'test-.*' of another workflow"):
        run(other, tmp_path)


def test_state_and_timeline_files(tmp_path: Path) -> None:
    result = run(workflow([py("ok", OK)], [task("a", "ok"), task("b", "ok", "a")]), tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["workflow"]["name"] == result.workflow_name
    assert state["nodes"]["a"]["phase"] == "Succeeded"
    timeline = json.loads((tmp_path / "timeline.json").read_text())
    assert timeline["phase"] == "Succeeded"
    a, b = timeline["tasks"]
    assert a["task"] == "a" and b["task"] == "b"
    assert a["start_s"] <= a["end_s"] <= b["start_s"] <= b["end_s"]
    assert a["pods"][0]["log"] == "logs/a.log"


# --- volumes, env, secrets ----------------------------------------------------------------------------------

def test_volume_paths_are_mapped_in_args_env_and_working_dir(tmp_path: Path) -> None:
    code = ("import os, sys, json; json.dump({'arg': sys.argv[1], 'json': sys.argv[2], 'env': os.environ['HF_HOME'], "
            "'cwd': os.getcwd(), 'shm': sys.argv[3]}, open('/workspace/seen.json', 'w'))")
    template = py("look", code, ("a", "b"), container={
        "env": [{"name": "HF_HOME", "value": "/hf-cache"}], "workingDir": "/workspace",
        "volumeMounts": [dict(name="workspace", mountPath="/workspace"), dict(name="hf", mountPath="/hf-cache"),
                         dict(name="dshm", mountPath="/dev/shm")]})
    template["container"]["args"].append("/dev/shm/x")
    manifest = workflow([template], [task("a", "look", args={
        "a": "--out=/workspace/runs/{{workflow.name}}/x", "b": '["/workspace/a", "/workspace2/b"]'})],
        volumeClaimTemplates=[{"metadata": {"name": "hf"}, "spec": {}}])
    manifest["spec"]["volumes"].append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    result = run(manifest, tmp_path)
    assert result.succeeded, result.message
    seen = json.loads((workspace(result) / "seen.json").read_text())
    ws = str(workspace(result).resolve())
    assert seen["arg"] == f"--out={ws}/runs/{result.workflow_name}/x"
    assert json.loads(seen["json"]) == [f"{ws}/a", "/workspace2/b"]
    assert seen["env"] == str((tmp_path / "volumes" / "hf").resolve())
    assert seen["cwd"] == ws
    assert seen["shm"].startswith(str((tmp_path / "volumes" / "dshm").resolve()))
    # an emptyDir lives as long as its pod
    assert list((tmp_path / "volumes" / "dshm").iterdir()) == []


def test_secret_env_from_the_local_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import os, sys; open('/workspace/' + sys.argv[1], 'w').write(os.environ.get('HF_TOKEN', '<unset>'))"
    secret = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}}}
    with_secret = py("with", code, ("file",), container={"env": [secret]})
    without = py("without", code, ("file",))
    required = py("required", code, ("file",), container={
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}]},
        retryStrategy={"limit": 3, "retryPolicy": "Always"})
    tasks = [task("a", "with", args={"file": "a"}), task("b", "without", args={"file": "b"})]

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    result = run(workflow([with_secret, without], tasks), tmp_path / "set")
    # the token reaches the template that mounts the secret, and only that one
    assert (workspace(result) / "a").read_text() == "hf_secret"
    assert (workspace(result) / "b").read_text() == "<unset>"
    assert "hf_secret" not in (tmp_path / "set" / "logs" / "a.log").read_text()

    monkeypatch.delenv("HF_TOKEN")
    result = run(workflow([with_secret, without], tasks), tmp_path / "unset")
    assert (workspace(result) / "a").read_text() == "<unset>"

    result = run(workflow([required], [task("c", "required", args={"file": "c"})]), tmp_path / "required")
    pod = pods(result)["c"]
    assert pod["phase"] == "Error" and len(pod["attempts"]) == 1  # a missing secret is not retried
    assert "Secret 'hf-token' (key 'token')" in pod["message"] and "HF_TOKEN" in pod["message"]


def test_python_is_the_projects_interpreter_and_cwd_is_the_invocation_dir(tmp_path: Path) -> None:
    code = "import sys, os; open('/workspace/who', 'w').write(sys.executable + chr(10) + os.getcwd())"
    template = py("who", code)
    template["container"]["command"] = ["python3", "-c"]
    project = tmp_path / "project"
    project.mkdir()
    result = run(workflow([template], [task("a", "who")]), tmp_path / "w", cwd=project)
    executable, cwd = (workspace(result) / "who").read_text().splitlines()
    assert os.path.realpath(executable) == os.path.realpath(os.sys.executable)
    assert cwd == str(project)


def test_container_entrypoint_template(tmp_path: Path) -> None:
    manifest = workflow([py("use", APPEND, ("file", "text"))], [])
    manifest["spec"]["templates"] = manifest["spec"]["templates"][:1]
    manifest["spec"]["entrypoint"] = "use"
    manifest["spec"]["arguments"] = {"parameters": [{"name": "file", "value": "f"}, {"name": "text", "value": "t"}]}
    result = run(manifest, tmp_path)
    assert result.succeeded, result.message
    assert (workspace(result) / "f").read_text() == "t\n"


# --- more of the manifest -------------------------------------------------------------------------------

def test_output_parameters_carry_container_paths(tmp_path: Path) -> None:
    # a step that prints where it wrote: locally a folder under the workdir, in the parameter /workspace
    code = "import sys; open('/workspace/where', 'w').write(sys.argv[1])"
    manifest = workflow(
        [py("where", code, ("path",), {"path": "/workspace/where"}), py("use", APPEND, ("file", "text"))],
        [task("a", "where", args={"path": "/workspace/runs/x/model"}),
         task("b", "use", "a", args={"file": "seen", "text": "{{tasks.a.outputs.parameters.path}}"})],
    )
    result = run(manifest, tmp_path)
    ws = str(workspace(result).resolve())
    assert (workspace(result) / "where").read_text() == f"{ws}/runs/x/model"  # what the process saw
    assert pods(result)["a"]["attempts"][0]["status"] == "Succeeded"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["nodes"]["a"]["outputs"] == {"path": "/workspace/runs/x/model"}  # what Argo would pass on
    assert (workspace(result) / "seen").read_text() == f"{ws}/runs/x/model\n"  # mapped again for b


def test_workflow_template_kind_and_default_retry_strategy(tmp_path: Path) -> None:
    manifest = workflow([py("flaky", FLAKY, ("fails", "code"))], [task("a", "flaky", args={"fails": "1", "code": "1"})],
                        retryStrategy={"limit": 1})
    manifest["kind"] = "WorkflowTemplate"
    manifest["metadata"] = {"name": "my-template"}
    result = run(manifest, tmp_path)
    assert result.succeeded
    assert result.workflow_name.startswith("my-template-")
    assert len(pods(result)["a"]["attempts"]) == 2


def test_dag_target_runs_only_what_it_needs(tmp_path: Path) -> None:
    manifest = workflow([py("use", APPEND, ("file", "text"))],
                        [task("a", "use", args={"file": "x", "text": "a"}),
                         task("b", "use", "a", args={"file": "x", "text": "b"}),
                         task("c", "use", args={"file": "x", "text": "c"})],
                        dag={"target": "b"})
    result = run(manifest, tmp_path)
    assert result.succeeded
    assert (workspace(result) / "x").read_text().split() == ["a", "b"]


def test_template_timeout_bounds_all_attempts(tmp_path: Path) -> None:
    slow = py("slow", "import time; time.sleep(30)", timeout="1s", retryStrategy={"limit": 5})
    started = time.time()
    result = run(workflow([slow], [task("a", "slow")]), tmp_path)
    assert time.time() - started < 10
    pod = pods(result)["a"]
    assert pod["phase"] == "Failed"
    assert pod["attempts"][0]["message"] == "timeout (1s) exceeded"


def test_on_transient_error_retries_what_matches_the_transient_error_pattern(tmp_path: Path) -> None:
    """Argo's OnTransientError retries a Failed or Error node whose message is a transient error: locally only
    `$TRANSIENT_ERROR_PATTERN` can say so (docs/retries.md, util/errors/errors.go matchTransientErrPattern)."""
    flaky = py("flaky", FLAKY, ("fails", "code"), retryStrategy={"limit": 2, "retryPolicy": "OnTransientError"})
    manifest = workflow([flaky], [task("a", "flaky", args={"fails": "1", "code": "1"})])
    assert len(pods(run(manifest, tmp_path / "plain"))["a"]["attempts"]) == 1
    result = run(manifest, tmp_path / "pattern", env={**os.environ, "TRANSIENT_ERROR_PATTERN": "exit code [12]$"})
    assert [a["status"] for a in pods(result)["a"]["attempts"]] == ["Failed", "Succeeded"]


def test_undeclared_argument_is_a_warning(tmp_path: Path) -> None:
    from workflows.runner import load_workflow

    manifest = workflow([py("ok", OK)], [task("a", "ok", args={"typo": "1"})])
    model = load_workflow(manifest)
    assert model.warnings == ["task 'a' of dag 'main' passes parameter 'typo', which template 'ok' does not "
                              "declare as an input (Argo ignores it)"]
