"""`tunebench lint`: the DAG defects Hera does not catch, and the CLI's verdicts."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from workflows.argo.errors import ManifestError
from workflows.argo.validate import load_workflow
from workflows.cli import app
from workflows.config import load_pipeline
from workflows.lint import lint_manifest, local_run_notes
from workflows.render import manifests

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"


@pytest.fixture(scope="module")
def pristine() -> dict:
    return manifests(load_pipeline(REFERENCE), "workflow")[0]


@pytest.fixture
def workflow(pristine) -> dict:
    return copy.deepcopy(pristine)


def template(workflow: dict, name: str) -> dict:
    return next(t for t in workflow["spec"]["templates"] if t["name"] == name)


def task(workflow: dict, name: str) -> dict:
    return next(t for t in template(workflow, "pipeline")["dag"]["tasks"] if t["name"] == name)


def test_the_reference_is_clean(workflow):
    assert lint_manifest(workflow) == []


def test_unknown_template(workflow):
    task(workflow, "merge-lora")["template"] = "merge-lora-v2"
    assert any("uses template 'merge-lora-v2', which does not exist" in p for p in lint_manifest(workflow))


def test_dependency_cycle(workflow):
    task(workflow, "convert-dataset")["depends"] = "merge-lora"
    problems = lint_manifest(workflow)
    assert any("dependency cycle" in p and "train" in p for p in problems)


def test_dependency_on_a_missing_task(workflow):
    task(workflow, "aggregate")["depends"] = "eval-baseline && eval-finetune"
    assert any("depends on 'eval-finetune', which is not a task" in p for p in lint_manifest(workflow))


def test_reference_to_a_task_that_is_not_an_ancestor(workflow):
    task(workflow, "eval-baseline")["depends"] = "convert-dataset"
    problems = lint_manifest(workflow)
    assert any("task 'plan-eval' is not a dependency of task 'eval-baseline'" in p for p in problems)


def test_reference_to_an_output_that_does_not_exist(workflow):
    task(workflow, "eval-baseline")["withParam"] = "{{tasks.plan-eval.outputs.parameters.items}}"
    assert any("has no output parameter 'items'" in p for p in lint_manifest(workflow))


def test_undeclared_parameter_passed(workflow):
    task(workflow, "train")["arguments"]["parameters"].append({"name": "epochs", "value": "3"})
    assert any("passes parameter 'epochs'" in p for p in lint_manifest(workflow))


def test_required_input_not_supplied(workflow):
    params = task(workflow, "train")["arguments"]["parameters"]
    params[:] = [p for p in params if p["name"] != "gpus"]
    assert any("input parameter 'gpus' of template 'train' is not supplied" in p for p in lint_manifest(workflow))


def test_template_reads_an_input_it_does_not_declare(workflow):
    template(workflow, "merge-lora")["container"]["args"].append("{{inputs.parameters.gpus}}")
    assert any("template 'merge-lora' has no input parameter 'gpus'" in p for p in lint_manifest(workflow))


def test_unknown_workflow_parameter(workflow):
    task(workflow, "upload")["when"] = "{{workflow.parameters.upload}} == true"
    assert any("{{workflow.parameters.upload}}: the workflow has no parameter 'upload'" in p
               for p in lint_manifest(workflow))


def test_mount_without_volume(workflow):
    workflow["spec"]["volumes"] = [v for v in workflow["spec"]["volumes"] if v["name"] != "hf-cache"]
    assert any("volumeMount 'hf-cache': no volume named 'hf-cache'" in p for p in lint_manifest(workflow))


def test_gpu_pods_bring_their_own_shm_volume(workflow):
    del template(workflow, "train")["volumes"]
    assert any("template 'train' volumeMount 'dshm': no volume named 'dshm'" in p for p in lint_manifest(workflow))


def test_item_outside_a_fan_out(workflow):
    del template(workflow, "eval-fanout")["dag"]["tasks"][0]["withParam"]
    assert any("has no withItems, withParam or withSequence, so there is no item" in p
               for p in lint_manifest(workflow))


def test_lint_catches_what_run_catches_in_a_nested_dag(workflow):
    """Issue 12: lint passed `{{inputs.parameters.nope}}` in a nested DAG task, which run rejected."""
    fanout = template(workflow, "eval-fanout")
    fanout["dag"]["tasks"][0]["arguments"]["parameters"][0]["value"] = "{{inputs.parameters.nope}}"
    problems = lint_manifest(workflow)
    assert any("dag template 'eval-fanout' has no input parameter 'nope'" in p for p in problems)
    with pytest.raises(ManifestError, match="no input parameter 'nope'"):
        load_workflow(workflow)


def test_features_the_runner_does_not_emulate_are_notes_not_problems(workflow):
    template(workflow, "plan-eval")["container"]["args"].append("{{=sprig.upper('x')}}")
    assert lint_manifest(workflow) == []
    assert any("expression tags" in note for note in local_run_notes(workflow))


def test_cli_lint_and_run_accept_a_plain_argo_file(tmp_path):
    manifest = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "hello-"},
                "spec": {"entrypoint": "main", "templates": [
                    {"name": "main", "dag": {"tasks": [{"name": "a", "template": "echo"},
                                                       {"name": "b", "template": "echo", "depends": "a"}]}},
                    {"name": "echo", "container": {"image": "python:3.11", "command": ["python", "-c", "pass"]}}]}}
    path = tmp_path / "hello.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(app, ["lint", str(path)])
    assert result.exit_code == 0, result.output
    assert "Workflow hello-" in result.output and "lint passed" in result.output
    result = CliRunner().invoke(app, ["run", str(path), "--workdir", str(tmp_path / "w"), "--quiet"])
    assert result.exit_code == 0, result.output

    manifest["spec"]["templates"][0]["dag"]["tasks"][1]["depends"] = "nope"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(app, ["lint", str(path)])
    assert result.exit_code == 1
    assert "depends on 'nope', which is not a task of this dag" in result.output


def test_a_cron_workflow_file_runs_its_workflow_spec_with_the_template_beside_it(tmp_path):
    template_doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "t"},
                    "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "word", "value": "a"}]},
                             "templates": [{"name": "main", "inputs": {"parameters": [{"name": "word"}]},
                                            "container": {"image": "python:3.11", "command": ["python", "-c"],
                                                          "args": ["import sys; assert sys.argv[1] == 'b'",
                                                                   "{{inputs.parameters.word}}"]}}]}}
    cron = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "nightly"},
            "spec": {"schedules": ["0 3 * * *"],
                     "workflowSpec": {"workflowTemplateRef": {"name": "t"},
                                      "arguments": {"parameters": [{"name": "word", "value": "b"}]}}}}
    path = tmp_path / "cron.yaml"
    path.write_text(yaml.safe_dump_all([cron, template_doc]))
    result = CliRunner().invoke(app, ["run", str(path), "--workdir", str(tmp_path / "w"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "nightly-" in (tmp_path / "w" / "state.json").read_text()

    path.write_text(yaml.safe_dump(cron))
    result = CliRunner().invoke(app, ["run", str(path), "--workdir", str(tmp_path / "w2")])
    assert result.exit_code == 2
    assert "workflowTemplateRef 't'" in result.output and "same file" in result.output


def test_cron_must_reference_a_rendered_template():
    cron = manifests(load_pipeline(REFERENCE), "cron")[0]
    assert lint_manifest(cron, {"gemma2-2b-acereason-math-benchmark"}) == []
    assert "not among the rendered templates" in lint_manifest(cron, {"other"})[0]


def test_cli_lint_passes_the_reference():
    result = CliRunner().invoke(app, ["lint", str(REFERENCE)])
    assert result.exit_code == 0, result.output
    assert "lint passed" in result.output


def test_cli_lint_fails_on_a_broken_config(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(REFERENCE.read_text().replace("gpus: 3", "gpus: three").replace("revision: main", "revison: main", 1))
    result = CliRunner().invoke(app, ["lint", str(broken)])
    assert result.exit_code == 1
    assert "train.gpus" in result.output and "three" in result.output
    assert "model.revison: unknown field" in result.output


def test_cli_render_all_prints_four_documents():
    result = CliRunner().invoke(app, ["render", str(REFERENCE), "--kind", "all"])
    assert result.exit_code == 0
    assert result.output.count("\nkind: ") + result.output.startswith("kind: ") == 4


def test_cli_render_rejects_an_unknown_kind():
    result = CliRunner().invoke(app, ["render", str(REFERENCE), "--kind", "job"])
    assert result.exit_code == 2
    assert "workflow, template, cron, all" in result.output


@pytest.mark.axolotl
def test_cli_lint_runs_axolotls_schema_over_the_final_config(tmp_path):
    axolotl_yaml = tmp_path / "bad-axolotl.yaml"
    reference_axolotl = ROOT / "configs" / "axolotl" / "gemma2-2b-qlora-fsdp.yaml"
    # A wrong type for a key Axolotl knows, and a misspelt key (a duplicate key would be refused earlier).
    text = re.sub(r"(?m)^lora_r: .*$", "lora_r: many", reference_axolotl.read_text())
    assert "lora_r: many" in text
    axolotl_yaml.write_text(text + "\nlora_dropuot: 0.1\n")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(REFERENCE.read_text().replace("configs/axolotl/gemma2-2b-qlora-fsdp.yaml", str(axolotl_yaml)))
    result = CliRunner().invoke(app, ["lint", str(pipeline)])
    assert result.exit_code == 1
    assert "lora_r" in result.output and "many" in result.output
    assert "unknown Axolotl key 'lora_dropuot'" in result.output


def test_submit_dry_run_refuses_wiring_errors_before_the_server(workflow, monkeypatch):
    import workflows.render

    task(workflow, "aggregate")["depends"] = "eval-baseline && eval-finetune"
    monkeypatch.setattr(workflows.render, "manifests", lambda cfg, kind: [workflow])
    result = CliRunner().invoke(app, ["submit", str(REFERENCE), "--dry-run", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "wiring errors" in result.output and "depends on 'eval-finetune'" in result.output


# --- lint catches what run catches, and passes what Argo accepts (issue 12 review) -----------------------------

def _plain(tasks: list[dict], templates: list[dict] | None = None, **spec) -> dict:
    echo = {"name": "echo", "inputs": {"parameters": [{"name": "x", "value": "1"}]},
            "container": {"image": "python:3.11", "command": ["python", "-c", "pass"]}}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "p-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": tasks}}, echo]
                     + (templates or []), **spec}}


def _with_echo(**fields) -> dict:
    manifest = _plain([{"name": "a", "template": "echo"}])
    manifest["spec"]["templates"][1].update(fields)
    return manifest


def _parameterised_target() -> dict:
    manifest = _plain([{"name": "a", "template": "echo"}],
                      arguments={"parameters": [{"name": "target", "value": "nope"}]})
    manifest["spec"]["templates"][0]["dag"]["target"] = "{{workflow.parameters.target}}"
    return manifest


RUN_REFUSES = {
    # operator.go processNodeRetries reads limit and backoff.factor with intstr.Int32, durations with
    # ParseStringToDuration: a value of the wrong form is the node's Error on Argo, a traceback here before
    "retry limit": (_with_echo(retryStrategy={"limit": "abc"}), "limit 'abc' is not an integer"),
    "backoff factor": (_with_echo(retryStrategy={"limit": 1, "backoff": {"duration": "1s", "factor": 1.5}}),
                       "factor 1.5 is not an integer"),
    "backoff duration": (_with_echo(retryStrategy={"limit": 1, "backoff": {"duration": "5x"}}),
                         "'5x' is not a duration"),
    # validate.go validateTemplate: "has invalid duration format in timeout" for a whole number
    "timeout without unit": (_with_echo(timeout="10"), "timeout '10' has no unit"),
    # validate.go: "activeDeadlineSeconds must be a positive integer > 0 or an argo variable"
    "activeDeadlineSeconds": (_with_echo(activeDeadlineSeconds="abc"), "activeDeadlineSeconds 'abc' must be"),
    # validate.go validateArgumentsValues: "value should be present in ... enum list"
    "enum": (_plain([{"name": "a", "template": "echo"}],
                    arguments={"parameters": [{"name": "t", "value": "c", "enum": ["a", "b"]}]}),
             "workflow parameter 't' = 'c' is not one of a, b"),
    # validate.go addItemsToScope: "only one of count or end can be defined in withSequence"
    "withSequence": (_plain([{"name": "a", "template": "echo", "withSequence": {"count": "2", "end": "5"},
                              "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}}]),
                     "only one of count or end can be defined in withSequence"),
    # validate.go validateDAG: an items-based result of a task that does not fan out
    "AnySucceeded without items": (_plain([{"name": "a", "template": "echo"},
                                           {"name": "b", "template": "echo", "depends": "a.AnySucceeded"}]),
                                   "dependency 'a' uses an items-based condition such as .AnySucceeded"),
    # the API server's DNS-1123 check of metadata.name / generateName + 5 characters
    "workflow name": ({**_plain([{"name": "a", "template": "echo"}]), "metadata": {"generateName": "Hello_World-"}},
                      "metadata.generateName 'Hello_World-' does not make a valid workflow name"),
    # a `when` or `withSequence` without references that cannot evaluate: the task is an Error on every run
    # (workflow/controller/steps.go shouldExecute, operator.go expandSequence); run did start the workflow
    "static when": (_plain([{"name": "a", "template": "echo", "when": "v1.2 == v1.2"}]),
                    "when 'v1.2 == v1.2' cannot be evaluated"),
    "static withSequence": (_plain([{"name": "a", "template": "echo", "withSequence": {"count": "two"},
                                     "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}}]),
                            "invalid withSequence"),
    "static withParam": (_plain([{"name": "a", "template": "echo", "withParam": "a,b",
                                  "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}}]),
                         "withParam 'a,b' is not a JSON list"),
    # examples/dag-targets.yaml's parameterised target, with a value that names no task: run refused it, lint passed
    "parameterised target": (_parameterised_target(), "gives 'nope' with the workflow parameters' values"),
}


@pytest.mark.parametrize("name", RUN_REFUSES)
def test_lint_reports_what_run_refuses(name, tmp_path):
    manifest, expected = RUN_REFUSES[name]
    assert any(expected in problem for problem in lint_manifest(manifest)), lint_manifest(manifest)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(app, ["run", str(path), "--workdir", str(tmp_path / "w"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w" / "logs").exists() or not any((tmp_path / "w" / "logs").iterdir())


ARGO_ACCEPTS = {
    # examples/global-parameters-from-configmap.yaml: a workflow parameter from a ConfigMap, referenced
    "workflow parameter valueFrom": _plain(
        [{"name": "a", "template": "echo", "arguments": {"parameters": [{"name": "x",
                                                                          "value": "{{workflow.parameters.m}}"}]}}],
        arguments={"parameters": [{"name": "m", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}),
    # examples/arguments-parameters-from-configmap.yaml: an input parameter from a ConfigMap is supplied
    "input valueFrom": _plain([{"name": "a", "template": "from-map"}], [
        {"name": "from-map", "inputs": {"parameters": [{"name": "m", "valueFrom": {
            "configMapKeyRef": {"name": "c", "key": "k"}}}]},
         "container": {"image": "python:3.11", "command": ["python", "-c", "pass"]}}]),
    # examples/dag-inline-workflow.yaml: a dag whose tasks are inline templates, one depending on another
    "inline tasks": _plain([{"name": "a", "inline": {"container": {"image": "busybox"}}},
                            {"name": "b", "template": "echo", "depends": "a"}]),
    # test/e2e/functional/dag-skipped-volume-default.yaml: a configMap volume, mounted
    "configMap volume": _plain([{"name": "a", "template": "mounts"}], [
        {"name": "mounts", "container": {"image": "python:3.11", "command": ["python", "-c", "pass"],
                                         "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}}],
        volumes=[{"name": "cfg", "configMap": {"name": "c", "optional": True}}]),
    # test/e2e/functional/nested-dag-outputs.yaml: a dag template's output parameter, read by the next task
    "dag outputs": _plain([{"name": "n", "template": "nested"},
                           {"name": "b", "template": "echo", "depends": "n", "arguments": {"parameters": [
                               {"name": "x", "value": "{{tasks.n.outputs.parameters.out}}"}]}}], [
        {"name": "nested", "dag": {"tasks": [{"name": "g", "template": "echo"}]},
         "outputs": {"parameters": [{"name": "out", "valueFrom": {"parameter": "{{tasks.g.outputs.parameters.x}}"}}]}}]),
}


@pytest.mark.parametrize("name", ARGO_ACCEPTS)
def test_lint_passes_what_argo_accepts_and_notes_what_run_does_not_emulate(name, tmp_path):
    manifest = ARGO_ACCEPTS[name]
    assert lint_manifest(manifest) == []
    assert local_run_notes(manifest)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(app, ["lint", str(path)])
    assert result.exit_code == 0 and "lint passed" in result.output, result.output


def test_a_plain_cron_workflow_may_refer_to_a_template_on_the_cluster(tmp_path):
    """examples/dag-inline-cronworkflow.yaml refers to a WorkflowTemplate that is not in the file: valid on a cluster,
    a note for `tunebench run`; rendered manifests must still refer to the templates rendered with them
    (test_cron_must_reference_a_rendered_template)."""
    cron = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "dag-inline"},
            "spec": {"schedules": ["*/5 * * * *"], "workflowSpec": {"workflowTemplateRef": {"name": "dag-inline"}}}}
    path = tmp_path / "cron.yaml"
    path.write_text(yaml.safe_dump(cron))
    result = CliRunner().invoke(app, ["lint", str(path)])
    assert result.exit_code == 0, result.output
    assert "workflowTemplateRef 'dag-inline'" in result.output and "same file" in result.output
