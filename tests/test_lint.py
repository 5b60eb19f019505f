"""`tunebench lint`: the DAG defects Hera does not catch, and the CLI's verdicts."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workflows.cli import app
from workflows.config import load_pipeline
from workflows.lint import lint_manifest
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
    assert any("reads task 'plan-eval', which is not an ancestor" in p for p in problems)


def test_reference_to_an_output_that_does_not_exist(workflow):
    task(workflow, "eval-baseline")["withParam"] = "{{tasks.plan-eval.outputs.parameters.items}}"
    assert any("reads output 'items'" in p for p in lint_manifest(workflow))


def test_undeclared_parameter_passed(workflow):
    task(workflow, "train")["arguments"]["parameters"].append({"name": "epochs", "value": "3"})
    assert any("passes parameter 'epochs'" in p for p in lint_manifest(workflow))


def test_required_input_not_supplied(workflow):
    params = task(workflow, "train")["arguments"]["parameters"]
    params[:] = [p for p in params if p["name"] != "gpus"]
    assert any("does not supply required input 'gpus'" in p for p in lint_manifest(workflow))


def test_template_reads_an_input_it_does_not_declare(workflow):
    template(workflow, "merge-lora")["container"]["args"].append("{{inputs.parameters.gpus}}")
    assert any("names an input it does not declare" in p for p in lint_manifest(workflow))


def test_unknown_workflow_parameter(workflow):
    task(workflow, "upload")["when"] = "{{workflow.parameters.upload}} == true"
    assert any("'{{workflow.parameters.upload}}' is not a workflow parameter" in p for p in lint_manifest(workflow))


def test_mount_without_volume(workflow):
    workflow["spec"]["volumes"] = [v for v in workflow["spec"]["volumes"] if v["name"] != "hf-cache"]
    assert any("volume mount 'hf-cache' at /mnt/hf-cache has no volume" in p for p in lint_manifest(workflow))


def test_gpu_pods_bring_their_own_shm_volume(workflow):
    del template(workflow, "train")["volumes"]
    assert any("template 'train': volume mount 'dshm' at /dev/shm has no volume" in p for p in lint_manifest(workflow))


def test_item_outside_a_fan_out(workflow):
    del template(workflow, "eval-fanout")["dag"]["tasks"][0]["withParam"]
    assert any("without withParam or withItems" in p for p in lint_manifest(workflow))


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
    axolotl_yaml.write_text(reference_axolotl.read_text() + "\nlora_r: many\nlora_dropuot: 0.1\n")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(REFERENCE.read_text().replace("configs/axolotl/gemma2-2b-qlora-fsdp.yaml", str(axolotl_yaml)))
    result = CliRunner().invoke(app, ["lint", str(pipeline)])
    assert result.exit_code == 1
    assert "lora_r" in result.output and "many" in result.output
    assert "unknown Axolotl key 'lora_dropuot'" in result.output
