"""The scores in Argo: output parameters and Prometheus metrics of the eval and aggregate templates,
their golden values, and validation against Argo v4.1.2's full CRD schemas (workflows.crd)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from steps.mmlu_pro import node_outputs
from workflows.config import load_pipeline
from workflows.crd import validate
from workflows.render import manifests

REFERENCE = "configs/pipelines/gemma2-2b-acereason-math.yaml"


def _templates(kind: str = "workflow") -> dict[str, dict[str, Any]]:
    cfg = load_pipeline(REFERENCE)
    [manifest] = [m for m in manifests(cfg, kind) if m["kind"] in ("Workflow", "WorkflowTemplate")][:1]
    return {t["name"]: t for t in manifest["spec"]["templates"]}


def test_eval_template_emits_one_accuracy_gauge_per_model_and_subject():
    template = _templates()["eval-mmlu-pro"]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in template["outputs"]["parameters"]}
    folder = "/mnt/workspace/runs/{{workflow.name}}/eval/{{inputs.parameters.slug}}/{{inputs.parameters.subject}}.outputs"
    assert outputs == {name: f"{folder}/{name}" for name in node_outputs.EVAL_OUTPUTS}
    [gauge] = template["metrics"]["prometheus"]
    assert gauge["name"] == "tunebench_mmlu_pro_accuracy" and gauge["when"] == "{{status}} == Succeeded"
    assert gauge["gauge"] == {"realtime": False, "value": "{{outputs.parameters.accuracy}}"}
    assert {label["key"]: label["value"] for label in gauge["labels"]} == {
        "model": "{{inputs.parameters.label}}", "role": "{{inputs.parameters.role}}",
        "subject": "{{inputs.parameters.subject}}", "revision": "{{outputs.parameters.model-revision}}",
        "settings_hash": "{{outputs.parameters.settings-hash}}", "questions": "{{outputs.parameters.questions}}"}


@pytest.mark.parametrize("kind", ["workflow", "template"])
def test_aggregate_template_exposes_scores_and_counts_regressions(kind):
    template = _templates(kind)["aggregate"]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in template["outputs"]["parameters"]}
    assert outputs.items() >= {name: f"/mnt/workspace/runs/{{{{workflow.name}}}}/summary/outputs/{name}"
                               for name in ("overall-accuracy", "largest-delta", "regressions")}.items()
    [counter] = template["metrics"]["prometheus"]
    assert counter["name"] == "tunebench_mmlu_pro_regressions"
    assert counter["counter"] == {"value": "{{outputs.parameters.regressions}}"}
    assert counter["labels"] == [{"key": "pipeline", "value": "gemma2-2b-acereason-math"}]
    assert "--require-significance" in template["container"]["args"]


@pytest.mark.parametrize("kind", ["workflow", "template"])
def test_the_regression_counter_is_emitted_on_every_run_so_the_alert_sees_the_first_regression(kind):
    """Prometheus' increase() cannot see the step of a counter series born at its first regression:
    the counter is emitted with 0 on a clean run (no `when`), and the documented alert also fires on
    a series that did not exist a day earlier."""
    [counter] = _templates(kind)["aggregate"]["metrics"]["prometheus"]
    assert "when" not in counter
    text = (Path(__file__).parent.parent / "docs" / "results.md").read_text()
    [rule] = [block for block in text.split("```yaml")[1:] if "alert: MMLUProRegression" in block]
    [alert] = yaml.safe_load(rule.split("```")[0])["groups"][0]["rules"]
    expression = " ".join(alert["expr"].split())
    counter_series = '{__name__=~"argo_workflows_tunebench_mmlu_pro_regressions(_total)?"}'
    assert f"increase({counter_series}[1d])" in expression
    assert f"{counter_series} unless {counter_series} offset 1d" in expression


def test_significance_can_be_switched_off_in_the_config(tmp_path):
    config = yaml.safe_load(Path(REFERENCE).read_text())
    config.setdefault("eval", {})["regression_requires_significance"] = False
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_pipeline(path)
    assert cfg.eval.regression_requires_significance is False
    aggregate = next(t for t in manifests(cfg, "workflow")[0]["spec"]["templates"] if t["name"] == "aggregate")
    assert "--no-require-significance" in aggregate["container"]["args"]
    assert load_pipeline(REFERENCE).eval.regression_requires_significance is True


# --- the full CRD schema (workflows.crd: Argo v4.1.2's, strict) ---------------------------------

@pytest.mark.parametrize("kind", ["workflow", "template", "cron"])
def test_manifests_with_the_score_fields_validate_against_the_v4_1_2_crds(kind):
    for manifest in manifests(load_pipeline(REFERENCE), kind):
        assert validate(manifest) == []


def test_the_crd_check_refuses_a_gauge_without_realtime():
    manifest = manifests(load_pipeline(REFERENCE), "workflow")[0]
    index, template = next((i, t) for i, t in enumerate(manifest["spec"]["templates"]) if t["name"] == "eval-mmlu-pro")
    del template["metrics"]["prometheus"][0]["gauge"]["realtime"]
    assert any(f"spec.templates[{index}].metrics.prometheus[0].gauge" in problem and "realtime" in problem
               for problem in validate(manifest))


def test_the_local_runner_accepts_the_metrics_and_still_catches_a_typo_in_them():
    from workflows.argo.errors import ManifestError
    from workflows.argo.validate import load_workflow

    manifest = manifests(load_pipeline("configs/pipelines/smoke.yaml"), "workflow")[0]
    load_workflow(copy.deepcopy(manifest))   # {{status}} and the template's own outputs resolve in metrics
    aggregate = next(t for t in manifest["spec"]["templates"] if t["name"] == "aggregate")
    aggregate["metrics"]["prometheus"][0]["counter"]["value"] = "{{outputs.parameters.regresions}}"
    with pytest.raises(ManifestError, match=r"template 'aggregate' metrics: cannot resolve \{\{outputs.parameters.regresions\}\}"):
        load_workflow(manifest)


def test_the_local_runner_runs_a_template_with_metrics_on_its_outputs(tmp_path):
    from test_runner_support import py, run, task, workflow, workspace

    template = py("score", "import os; os.makedirs('/workspace/out', exist_ok=True); "
                           "open('/workspace/out/accuracy', 'w').write('0.25')", (), {"accuracy": "/workspace/out/accuracy"})
    template["metrics"] = {"prometheus": [{
        "name": "accuracy", "help": "h", "when": "{{status}} == Succeeded",
        "labels": [{"key": "run", "value": "{{workflow.name}}"}],
        "gauge": {"realtime": False, "value": "{{outputs.parameters.accuracy}}"}}]}
    result = run(workflow([template], [task("a", "score")]), tmp_path)
    assert result.succeeded, result.message
    assert (workspace(result) / "out" / "accuracy").read_text() == "0.25"


def test_a_metric_naming_an_output_the_template_lacks_is_a_wiring_error():
    from workflows.argo.validate import validate

    manifest = manifests(load_pipeline("configs/pipelines/smoke.yaml"), "workflow")[0]
    evaluation = next(t for t in manifest["spec"]["templates"] if t["name"] == "eval-mmlu-pro")
    evaluation["metrics"]["prometheus"][0]["labels"].append({"key": "x", "value": "{{outputs.parameters.nope}}"})
    problems = [p.text for p in validate(manifest).problems]
    assert any("template 'eval-mmlu-pro' metrics: cannot resolve {{outputs.parameters.nope}}" in p
               and "has no output parameter 'nope'" in p for p in problems), problems
