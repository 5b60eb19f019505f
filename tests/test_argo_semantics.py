"""Argo v4.1's DAG semantics, one small Workflow per rule, each asserting every task's phase.

Each test names the Argo document, example or test it follows (argoproj/argo-workflows at v4.1.2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from test_runner_support import OK, phases, pods, py, run, task, workflow, workspace

pytestmark = pytest.mark.timeout(120)
KEEP = "import sys; open('/workspace/' + sys.argv[1], 'w').write(sys.argv[2])"  # name, value


def _pod_windows(result: Any, prefix: str) -> list[tuple[float, float]]:
    return [(pod["start_s"], pod["end_s"]) for name, pod in pods(result).items() if name.startswith(prefix)]


def _most_at_once(windows: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_non_zero_exits_signal_kills_and_commands_that_cannot_start_are_failed(tmp_path: Path) -> None:
    """docs/enhanced-depends-logic.md: `.Failed` is "exited with a non-0 exit code", `.Errored` "an error other
    than a non-0 exit code"; a container killed by a signal exits 128+n, one whose command cannot start fails."""
    templates = [py("exit3", "import sys; sys.exit(3)"),
                 py("killed", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
                 {"name": "nostart", "container": {"image": "x", "command": ["/no/such/binary"]}},
                 py("ok", OK)]
    tasks = [task("exit", "exit3"), task("kill", "killed"), task("start", "nostart"),
             task("exit-failed", "ok", "exit.Failed"), task("kill-failed", "ok", "kill.Failed"),
             task("start-failed", "ok", "start.Failed"), task("start-errored", "ok", "start.Errored")]
    result = run(workflow(templates, tasks, dag={"failFast": False}), tmp_path)
    assert phases(result) == {"exit": "Failed", "kill": "Failed", "start": "Failed", "exit-failed": "Succeeded",
                              "kill-failed": "Succeeded", "start-failed": "Succeeded", "start-errored": "Omitted"}
    assert pods(result)["kill"]["attempts"][-1]["exit_code"] == 137
    assert result.phase == "Failed"  # the Omitted leaf takes the failure of the branch it hangs from


def test_an_empty_retry_strategy_retries_until_completion(tmp_path: Path) -> None:
    """docs/walk-through/retrying-failed-or-errored-steps.md: "Providing an empty retryStrategy (i.e.
    retryStrategy: {}) will cause a container to retry until completion" (examples/retry-container-to-completion.yaml)."""
    flaky = ("import sys, pathlib; p = pathlib.Path('/workspace/n'); n = int(p.read_text()) + 1 if p.exists() else 1; "
             "p.write_text(str(n)); sys.exit(0 if n > 3 else 1)")
    result = run(workflow([py("flaky", flaky, retryStrategy={})], [task("a", "flaky")]), tmp_path)
    assert phases(result) == {"a": "Succeeded"}
    assert [a["status"] for a in pods(result)["a"]["attempts"]] == ["Failed", "Failed", "Failed", "Succeeded"]


def test_when_is_govaluate_with_in_arrays_and_dotted_words_as_errors(tmp_path: Path) -> None:
    """workflow/controller/operator.go shouldExecute: govaluate, with VARIABLE tokens turned into strings; a word
    with a dot lexes as an ACCESSOR, which does not evaluate (docs/walk-through/conditionals.md for `when`)."""
    tasks = [task("in-array", "ok", when="'b' in ('a', 'b')"), task("not-in", "ok", when="c in ('a', 'b')"),
             task("number-vs-string", "ok", when="1 == '1'"), task("bare-word", "ok", when="heads == heads"),
             task("dotted", "ok", when="v1.2 == v1.2"), task("quoted-dots", "ok", when="'v1.2' == 'v1.2'")]
    result = run(workflow([py("ok", OK)], tasks, dag={"failFast": False}), tmp_path)
    assert phases(result) == {"in-array": "Succeeded", "not-in": "Skipped", "number-vs-string": "Skipped",
                              "bare-word": "Succeeded", "dotted": "Error", "quoted-dots": "Succeeded"}
    assert "govaluate accessor" in pods(result)["dotted"]["message"]


def test_dag_parallelism_counts_its_own_children_not_the_pods_of_dags_it_invokes(tmp_path: Path) -> None:
    """workflow/controller/operator.go checkParallelism and node_counters.go getActiveChildren: a DAG's
    parallelism counts its active children (pods, and nested DAG nodes once each) with it as boundary
    (examples/parallelism-nested-dag.yaml)."""
    sleep = py("sleep", "import time; time.sleep(0.6)")
    inner = {"name": "inner", "dag": {"tasks": [task("p1", "sleep"), task("p2", "sleep")]}}
    manifest = workflow([sleep, inner], [task("one", "inner"), task("two", "inner")])
    manifest["spec"]["templates"][-1]["parallelism"] = 1
    result = run(manifest, tmp_path, parallelism=8)
    assert phases(result) == {"one": "Succeeded", "two": "Succeeded", "one.p1": "Succeeded", "one.p2": "Succeeded",
                              "two.p1": "Succeeded", "two.p2": "Succeeded"}
    assert _most_at_once(_pod_windows(result, "one.")) == 2  # inside a nested DAG, both pods at once
    one, two = _pod_windows(result, "one."), _pod_windows(result, "two.")
    assert max(end for _, end in one) <= min(start for start, _ in two) or \
        max(end for _, end in two) <= min(start for start, _ in one)  # one nested DAG at a time


def test_empty_with_items_runs_once_and_an_empty_with_param_is_skipped(tmp_path: Path) -> None:
    """workflow/controller/dag.go: expandTask returns the task itself when withItems is empty (ShouldExpand is
    false), and an expanding task with no items is "Skipped, empty params"; its dependents run."""
    tasks = [task("no-items", "ok", withItems=[]), task("empty-param", "ok", withParam="[]"),
             task("after", "ok", "empty-param")]
    result = run(workflow([py("ok", OK)], tasks), tmp_path)
    assert phases(result) == {"no-items": "Succeeded", "empty-param": "Skipped", "after": "Succeeded"}
    assert [name for name in pods(result) if name.startswith("no-items")] == ["no-items"]


def test_workflow_metadata_labels_are_workflow_labels(tmp_path: Path) -> None:
    """docs/variables.md `workflow.labels.<NAME>`; spec.workflowMetadata.labels are set on the Workflow."""
    manifest = workflow([py("keep", KEEP, ("name", "value"))],
                        [task("a", "keep", args={"name": "team", "value": "{{workflow.labels.team}}"})],
                        workflowMetadata={"labels": {"team": "ml-platform"}})
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Succeeded"}
    assert (workspace(result) / "team").read_text() == "ml-platform"


def test_a_parameterised_dag_target_runs_what_it_needs(tmp_path: Path) -> None:
    """examples/dag-targets.yaml: `target: "{{workflow.parameters.target}}"`; target E runs A, C and E only."""
    tasks = [task("A", "ok"), task("B", "ok", "A"), task("C", "ok", "A"), task("D", "ok", "B && C"),
             task("E", "ok", "C")]
    manifest = workflow([py("ok", OK)], tasks, parameters={"target": "E"},
                        dag={"target": "{{workflow.parameters.target}}"})
    result = run(manifest, tmp_path)
    assert result.succeeded
    assert phases(result) == {"A": "Succeeded", "B": "Pending", "C": "Succeeded", "D": "Pending", "E": "Succeeded"}
    other = run(manifest, tmp_path / "d", parameters={"target": "D"})
    assert phases(other) == {"A": "Succeeded", "B": "Succeeded", "C": "Succeeded", "D": "Succeeded", "E": "Pending"}


def test_a_metrics_block_is_ignored(tmp_path: Path) -> None:
    """docs/metrics.md: metrics are emitted by the controller (examples/custom-metrics.yaml); locally there is no
    Prometheus endpoint, so the block is ignored, `{{status}}` in it included."""
    counter = {"prometheus": [{"name": "result_counter", "help": "Count of step execution by result status",
                               "labels": [{"key": "status", "value": "{{status}}"}], "counter": {"value": "1"}}]}
    manifest = workflow([py("ok", OK, metrics=counter)], [task("a", "ok")], metrics=counter)
    result = run(manifest, tmp_path)
    assert phases(result) == {"a": "Succeeded"}


def test_outputs_of_skipped_tasks_follow_v4_1(tmp_path: Path) -> None:
    """docs/enhanced-depends-logic.md "Output references from Skipped or Omitted tasks" and the e2e workflows
    test/e2e/functional/dag-skipped-producer-default.yaml, dag-skipped-consumer-default.yaml and
    dag-skipped-output-ref.yaml (workflow/controller/dag_test.go TestDAGSkippedOutputRef)."""
    producer = py("produce", "open('/workspace/out', 'w').write('real')", outputs={"msg": "/workspace/out"})
    with_default = py("produce-default", "open('/workspace/out', 'w').write('real')", outputs={"msg": "/workspace/out"})
    with_default["outputs"]["parameters"][0]["valueFrom"]["default"] = "hello-from-producer"
    consume = py("consume", KEEP, ("name", "in"))
    consume_default = py("consume-default", KEEP, ("name", "in"))
    consume_default["inputs"]["parameters"][1]["default"] = "fallback-from-input"
    after = "p.Succeeded || p.Skipped"
    tasks = [task("p", "produce", when="false"), task("pd", "produce-default", when="false"),
             task("producer-default", "consume", "pd.Succeeded || pd.Skipped",
                  args={"name": "a", "in": "{{tasks.pd.outputs.parameters.msg}}"}),
             task("consumer-default", "consume-default", after,
                  args={"name": "b", "in": "{{tasks.p.outputs.parameters.msg}}"}),
             task("embedded", "consume", after, args={"name": "c", "in": "x-{{tasks.p.outputs.parameters.msg}}-y"}),
             task("no-default", "consume", after, args={"name": "d", "in": "{{tasks.p.outputs.parameters.msg}}"})]
    result = run(workflow([producer, with_default, consume, consume_default], tasks, dag={"failFast": False}),
                 tmp_path)
    assert phases(result) == {"p": "Skipped", "pd": "Skipped", "producer-default": "Succeeded",
                              "consumer-default": "Succeeded", "embedded": "Succeeded", "no-default": "Error"}
    volume = workspace(result)
    assert [(volume / name).read_text() for name in "abc"] == ["hello-from-producer", "fallback-from-input", "x--y"]
    assert "absent optional" in pods(result)["no-default"]["message"]


def test_fail_fast_waits_for_a_target_so_a_fan_out_runs_all_its_children(tmp_path: Path) -> None:
    """workflow/controller/dag.go assessDAGPhase: `dag.failFast` fails the DAG once a *target* task's branch
    has failed; a fan-out is decided only when all its children have ended, so a failed child does not stop
    its siblings and the phases do not depend on which child ends first (here the failing one ends first,
    while another is still running, and the DAG runs two at a time)."""
    item = py("item", "import sys, time; time.sleep(0.5 if sys.argv[1] == 'a' else 0); "
                      "sys.exit(1 if sys.argv[1] == 'b' else 0)", ("i",))
    manifest = workflow([item, py("ok", OK)],
                        [task("fan", "item", withItems=["a", "b", "c", "d"], args={"i": "{{item}}"}),
                         task("after", "ok", "fan")])
    manifest["spec"]["templates"][-1]["parallelism"] = 2
    seen = []
    for attempt in range(2):
        result = run(manifest, tmp_path / str(attempt), parallelism=4)
        seen.append((phases(result), {name: pod["phase"] for name, pod in pods(result).items()}))
    assert seen[0] == seen[1]
    assert seen[0][0] == {"fan": "Failed", "after": "Omitted"}
    assert {name: phase for name, phase in seen[0][1].items() if name.startswith("fan")} == {
        "fan(0:a)": "Succeeded", "fan(1:b)": "Failed", "fan(2:c)": "Succeeded", "fan(3:d)": "Succeeded"}


def test_the_templates_own_fail_fast_stops_new_children_after_any_failure(tmp_path: Path) -> None:
    """test/e2e/functional_test.go TestWorkflowParallelismDAGFailFast (expectedfailures/parallelism-dag-fail-fast.yaml)
    and operator.go checkParallelism: with the template's `failFast: true` a failed child, even one a dependant
    handles, stops new children; running ones finish; the DAG fails with Argo's message."""
    templates = [py("fail", "import sys; sys.exit(1)"), py("sleep", "import time; time.sleep(1)"), py("ok", OK)]
    tasks = [task("task1", "fail"), task("task2", "sleep"), task("handler", "ok", "task1.Failed"),
             task("later", "ok", "task2")]
    manifest = workflow(templates, tasks)
    manifest["spec"]["templates"][-1].update({"parallelism": 2, "failFast": True})
    result = run(manifest, tmp_path, parallelism=4)
    assert phases(result) == {"task1": "Failed", "task2": "Succeeded", "handler": "Pending", "later": "Pending"}
    assert result.phase == "Failed"
    assert result.message == "template has failed or errored children and failFast enabled"

