"""Argo v4.1's DAG semantics, one small Workflow per rule, each asserting every task's phase.

Each test names the Argo document, example or test it follows (argoproj/argo-workflows at v4.1.2).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflows.argo.errors import ManifestError
from workflows.argo.phase import Phase
from workflows.runner.process import AttemptResult
from workflows.runner.retry import decide
from test_runner_support import OK, most_at_once, phases, pods, py, run, task, workflow, workspace

pytestmark = pytest.mark.timeout(120)
KEEP = "import sys; open('/workspace/' + sys.argv[1], 'w').write(sys.argv[2])"  # name, value


def _pod_windows(result: Any, prefix: str) -> list[tuple[float, float]]:
    return [(pod["start_s"], pod["end_s"]) for name, pod in pods(result).items() if name.startswith(prefix)]


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
    assert pods(result)["start"]["attempts"][-1]["exit_code"] == 64  # cmd/argoexec/main.go: the emissary's exit
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
             task("dotted", "ok", when="{{workflow.parameters.version}} == v1"),
             task("quoted-dots", "ok", when="'{{workflow.parameters.version}}' == 'v1.2'")]
    # a substituted value (a literal one is a wiring error: test_lint.py test_lint_reports_what_run_refuses)
    result = run(workflow([py("ok", OK)], tasks, parameters={"version": "v1.2"}, dag={"failFast": False}), tmp_path)
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
    assert most_at_once(_pod_windows(result, "one.")) == 2  # inside a nested DAG, both pods at once
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
    dag-skipped-output-ref.yaml (test/e2e/functional_test.go TestDAGSkippedOutputRef). The page says an
    embedded reference resolves to "", but v4.1's code fails it: util/template/simple_template.go ("output is an
    absent optional"), asserted by util/template/replace_test.go SimpleTagAbsentValueErrors for
    `pre-{{tasks.producer.outputs.parameters.msg}}-post`; so `embedded` is an Error, as on the cluster."""
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
                              "consumer-default": "Succeeded", "embedded": "Error", "no-default": "Error"}
    volume = workspace(result)
    assert [(volume / name).read_text() for name in "ab"] == ["hello-from-producer", "fallback-from-input"]
    assert not (volume / "c").exists()
    assert "absent optional" in pods(result)["no-default"]["message"]
    assert "output is an absent optional" in pods(result)["embedded"]["message"]
    assert result.phase == "Error"  # TestDAGSkippedOutputRef: the workflow is an Error


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



# --- failFast without timing: what starts after a failure depends on outcomes, not on which process ends first ---

SLEEP_THEN_EXIT = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))"


def _timing_variants(build: Any, tmp_path: Path, **options: Any) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    """Runs `build(first, second)` twice: the failing task ends first (0 s against 1.2 s), then last."""
    seen = []
    for index, (fail_s, other_s) in enumerate([("0", "1.2"), ("1.2", "0")]):
        result = run(build(fail_s, other_s), tmp_path / str(index), **options)
        seen.append((result.phase, result.message.replace(str(result.workdir), "WORKDIR"), phases(result),
                     {name: pod["phase"] for name, pod in pods(result).items()}))
    return seen


def test_fail_fast_starts_the_next_tasks_only_once_everything_begun_has_ended(tmp_path: Path) -> None:
    """dag.go assessDAGPhase stops new tasks once a target's branch failed, so on Argo whether `b2` (after `b1`)
    and the nested DAG's `n2` start depends on whether `b1`/`n1` end before `a` fails (as `D` in
    examples/dag-continue-on-fail.yaml). The local runner starts a failFast DAG's tasks in steps — the next
    ones once all it began have ended — so both timings give the run where every pod of a step takes as long:
    `b2` never starts, and the nested DAG, begun in the same step as `a`, runs to its end."""
    step = py("step", SLEEP_THEN_EXIT, ("seconds", "code"))
    inner = {"name": "inner", "inputs": {"parameters": [{"name": "seconds"}]},
             "dag": {"tasks": [task("n1", "step", args={"seconds": "{{inputs.parameters.seconds}}", "code": "0"}),
                               task("n2", "step", "n1", args={"seconds": "0", "code": "0"})]}}

    def build(fail_s: str, other_s: str) -> dict[str, Any]:
        return workflow([step, inner], [
            task("a", "step", args={"seconds": fail_s, "code": "1"}),
            task("b1", "step", args={"seconds": other_s, "code": "0"}),
            task("b2", "step", "b1", args={"seconds": "0", "code": "0"}),
            task("n", "inner", args={"seconds": other_s})])

    first, second = _timing_variants(build, tmp_path, parallelism=4)
    assert first == second
    assert first[:3] == ("Failed", "task 'a' failed: exit code 1", {
        "a": "Failed", "b1": "Succeeded", "b2": "Pending", "n": "Succeeded", "n.n1": "Succeeded",
        "n.n2": "Succeeded"})


def test_the_failure_a_failed_dag_reports_does_not_depend_on_which_ended_first(tmp_path: Path) -> None:
    """Two targets fail in one step, one as Error (its declared output was not written) and one as Failed: the
    DAG's phase and message name the first of them in the DAG's order, whichever process ended first."""
    errs = py("errs", "import sys, time; time.sleep(float(sys.argv[1]))", ("seconds",),
              outputs={"out": "/workspace/never-written"})
    fails = py("fails", SLEEP_THEN_EXIT, ("seconds", "code"))

    def build(fail_s: str, other_s: str) -> dict[str, Any]:
        return workflow([errs, fails], [task("e", "errs", args={"seconds": other_s}),
                                        task("f", "fails", args={"seconds": fail_s, "code": "3"})])

    first, second = _timing_variants(build, tmp_path, parallelism=4)
    assert first == second
    assert first[0] == "Error" and first[1].startswith("task 'e'")
    assert first[2] == {"e": "Error", "f": "Failed"}


def test_the_templates_own_fail_fast_lets_every_pod_of_a_begun_task_run(tmp_path: Path) -> None:
    """operator.go checkParallelism: with the template's `failFast: true` Argo creates no child after a failure, so
    under `parallelism: 2` which items of a fan-out begun beside the failing task still run depends on timing.
    Locally every pod of a task that began runs (parallelism only paces them); the next tasks do not start."""
    step = py("step", SLEEP_THEN_EXIT, ("seconds", "code"))

    def build(fail_s: str, other_s: str) -> dict[str, Any]:
        manifest = workflow([step], [
            task("x", "step", args={"seconds": fail_s, "code": "1"}),
            task("fan", "step", withItems=["1", "2", "3"], args={"seconds": other_s, "code": "0"}),
            task("after", "step", "fan", args={"seconds": "0", "code": "0"})])
        manifest["spec"]["templates"][-1].update({"parallelism": 2, "failFast": True})
        return manifest

    first, second = _timing_variants(build, tmp_path, parallelism=4)
    assert first == second
    assert first[:3] == ("Failed", "template has failed or errored children and failFast enabled",
                         {"x": "Failed", "fan": "Succeeded", "after": "Pending"})
    assert sorted(first[3].values()) == ["Failed", "Succeeded", "Succeeded", "Succeeded"]


# --- issue 12 review: what a failed DAG names, retry strategies Argo cannot read, -p and dag.target -------------

def test_a_failed_dag_names_the_failure_on_the_failed_targets_branch_not_one_continue_on_forgave(
        tmp_path: Path) -> None:
    """examples/dag-continue-on-fail.yaml: `B` fails with `continueOn: {failed: true}` and `D` after it runs; `E`
    fails and omits the target `G`, which fails the DAG (dag.go assessDAGPhase). The DAG names `E`, whose
    failure decided it, not `B`, which comes first in the DAG's order but decided nothing."""
    templates = [py("ok", OK), py("fail", "import sys; sys.exit(1)")]
    tasks = [task("A", "ok"), task("B", "fail", "A", continueOn={"failed": True}), task("C", "ok", "A"),
             task("D", "ok", "B && C"), task("E", "fail", "A"), task("F", "ok", "A"), task("G", "ok", "E && F")]
    result = run(workflow(templates, tasks), tmp_path, parallelism=4)
    assert phases(result) == {"A": "Succeeded", "B": "Failed", "C": "Succeeded", "D": "Succeeded", "E": "Failed",
                              "F": "Succeeded", "G": "Omitted"}
    assert result.phase == "Failed"
    assert result.message.startswith("task 'E' failed")


def test_a_retry_limit_that_is_no_integer_once_substituted_is_the_tasks_error(tmp_path: Path) -> None:
    """workflow/controller/operator.go processNodeRetries reads `limit` with intstr.Int32 and executeTemplate marks
    the node Error when it cannot (a substituted input here; lint reports a literal one). It was a traceback."""
    flaky = py("flaky", "import sys; sys.exit(1)", ("limit",), retryStrategy={"limit": "{{inputs.parameters.limit}}"})
    tasks = [task("bad", "flaky", args={"limit": "two"}), task("good", "flaky", args={"limit": "1"})]
    result = run(workflow([flaky], tasks, dag={"failFast": False}), tmp_path)
    assert phases(result) == {"bad": "Error", "good": "Failed"}
    assert "retryStrategy.limit: 'two' is not an integer" in pods(result)["bad"]["message"]
    assert len(pods(result)["good"]["attempts"]) == 2


def test_a_backoff_factor_applies_only_when_positive() -> None:
    """operator.go processNodeRetries: `timeToWait = duration * factor^(retries)` only `if factor > 0`; otherwise
    every wait is the base duration."""
    failed = AttemptResult(Phase.FAILED, 1, "exit code 1", 0.0, 1.0)
    delays = [decide({"limit": 5, "backoff": {"duration": "2s", "factor": factor}}, "t", 2, failed, 0.0).delay
              for factor in (0, 3)]
    assert delays == [2.0, 18.0]


def test_a_parameter_given_with_p_is_validated_as_argo_submit_p_does(tmp_path: Path) -> None:
    """`argo submit -p` sets spec.arguments before the server validates the Workflow: a parameterised dag.target
    whose default names no task runs with `-p target=E` (examples/dag-targets.yaml), and is refused without."""
    tasks = [task("A", "ok"), task("E", "ok", "A"), task("F", "ok", "A")]
    manifest = workflow([py("ok", OK)], tasks, parameters={"target": "CHANGE-ME"},
                        dag={"target": "{{workflow.parameters.target}}"})
    result = run(manifest, tmp_path / "e", parameters={"target": "E"})
    assert phases(result) == {"A": "Succeeded", "E": "Succeeded", "F": "Pending"}
    with pytest.raises(ManifestError, match="gives 'CHANGE-ME' with the workflow parameters' values"):
        run(manifest, tmp_path / "default")


def test_with_sequence_expands_as_argo_expand_sequence_does(tmp_path: Path) -> None:
    """workflow/controller/operator.go expandSequence: `count: 0` is no item (the task is "Skipped, empty params"),
    otherwise end = start + count - 1, so a negative count counts down past start; `end` below `start` counts down;
    `format` is applied to each number."""
    echo = py("echo", "pass", ("i",))
    tasks = [task("none", "echo", withSequence={"count": "0"}, args={"i": "{{item}}"}),
             task("negative", "echo", withSequence={"start": "1", "count": "-2"}, args={"i": "{{item}}"}),
             task("down", "echo", withSequence={"start": "3", "end": "1", "format": "%02d"}, args={"i": "{{item}}"})]
    result = run(workflow([echo], tasks), tmp_path)
    assert phases(result) == {"none": "Skipped", "negative": "Succeeded", "down": "Succeeded"}
    assert sorted(name for name in pods(result) if name.startswith(("negative", "down"))) == [
        "down(0:03)", "down(1:02)", "down(2:01)", "negative(0:1)", "negative(1:0)", "negative(2:-1)", "negative(3:-2)"]


def test_a_long_generate_name_is_cut_as_kubernetes_cuts_it(tmp_path: Path) -> None:
    """k8s.io/apiserver names.SimpleNameGenerator: a generateName longer than 58 characters is cut to 58 before the
    5 random characters, so `{{workflow.name}}` (and RUN's folder) is 63 characters long; a resume finds it."""
    manifest = workflow([py("ok", OK)], [task("a", "ok")])
    manifest["metadata"]["generateName"] = "a" * 69 + "-"
    result = run(manifest, tmp_path)
    assert len(result.workflow_name) == 63 and result.workflow_name.startswith("a" * 58)
    assert run(manifest, tmp_path).workflow_name == result.workflow_name


def test_a_task_whose_when_is_false_skips_an_expansion_it_cannot_parse(tmp_path: Path) -> None:
    """workflow/controller/dag.go expandTask: a withParam that is no JSON list, or a withSequence that is no number,
    is an error only when the task's `when` (evaluated before any `{{item}}`) is true; when it is false the task
    has no items: "Skipped, empty params"."""
    echo = py("echo", "pass", ("i",))
    tasks = [task("param-off", "echo", when="{{workflow.parameters.run}} == yes", withParam="{{workflow.parameters.list}}",
                  args={"i": "{{item}}"}),
             task("param-on", "echo", when="{{workflow.parameters.list}} == none", withParam="{{workflow.parameters.list}}",
                  args={"i": "{{item}}"}),
             task("sequence-off", "echo", when="{{workflow.parameters.run}} == yes",
                  withSequence={"count": "{{workflow.parameters.list}}"}, args={"i": "{{item}}"})]
    result = run(workflow([echo], tasks, parameters={"run": "no", "list": "none"}, dag={"failFast": False}), tmp_path)
    assert phases(result) == {"param-off": "Skipped", "param-on": "Error", "sequence-off": "Skipped"}
    timeline = json.loads((result.workdir / "timeline.json").read_text())
    messages = {entry["task"]: entry["message"] for entry in timeline["tasks"]}
    assert "withParam value could not be parsed as a JSON list: none" in messages["param-on"]
    assert messages["param-off"] == "Skipped, empty params"
