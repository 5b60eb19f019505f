"""Rendered manifests: golden files, Argo's strict schema, determinism, no shell, safe parameters."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from steps.mmlu_pro.subjects import SUBJECTS
from workflows.config import load_pipeline
from workflows.lint import lint_manifest
from workflows.render import manifests, render
from workflows.schema import validate_against_schema

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "configs" / "pipelines").glob("*.yaml"))
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
GOLDEN = ROOT / "tests" / "golden"
EVIL = "x; rm -rf / $(id)"


@pytest.fixture(scope="module")
def reference():
    return load_pipeline(REFERENCE)


@pytest.fixture(scope="module")
def schema_file(shared_data):
    return shared_data / "argo" / "workflow-schema-v4.0.5.json"


def templates_of(manifest: dict) -> list[dict]:
    spec = manifest["spec"]
    return spec.get("templates") or spec.get("workflowSpec", {}).get("templates") or []


@pytest.mark.parametrize("kind", ["workflow", "template", "cron"])
def test_golden_manifests(reference, kind, update_golden):
    golden = GOLDEN / f"{REFERENCE.stem}.{kind}.yaml"
    text = render(reference, kind)
    if update_golden:
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run pytest --update-golden once and review the diff"
    assert text == golden.read_text(), f"{golden.name} differs: review the change, then pytest --update-golden"


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.stem)
def test_render_is_deterministic(pipeline):
    cfg = load_pipeline(pipeline)
    assert render(cfg, "all") == render(load_pipeline(pipeline), "all")


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.stem)
def test_every_kind_passes_argos_strict_schema_and_dag_checks(pipeline, schema_file):
    documents = manifests(load_pipeline(pipeline), "all")
    kinds = [d["kind"] for d in documents]
    assert kinds[:3] == ["Workflow", "WorkflowTemplate", "WorkflowTemplate"]
    names = {d["metadata"]["name"] for d in documents if d["kind"] == "WorkflowTemplate"}
    for document in documents:
        assert validate_against_schema(document, schema_file) == []
        assert lint_manifest(document, names) == []


def test_reference_renders_all_four_kinds(reference):
    kinds = [d["kind"] for d in manifests(reference, "all")]
    assert kinds == ["Workflow", "WorkflowTemplate", "WorkflowTemplate", "CronWorkflow"]


def test_strict_schema_rejects_a_misspelled_field(reference, schema_file):
    workflow = manifests(reference, "workflow")[0]
    workflow["spec"]["templates"][0]["container"]["imagePulPolicy"] = "Always"
    problems = validate_against_schema(workflow, schema_file)
    assert any("imagePulPolicy" in p for p in problems)


def test_integer_quantities_are_accepted_as_the_api_does(reference, schema_file):
    workflow = manifests(reference, "workflow")[0]
    train = next(t for t in workflow["spec"]["templates"] if t["name"] == "train")
    train["container"]["resources"]["limits"]["cpu"] = 24
    assert validate_against_schema(workflow, schema_file) == []


def test_every_step_runs_exec_form_python_never_a_shell(reference):
    for document in manifests(reference, "all"):
        for template in templates_of(document):
            container = template.get("container")
            if container is None:
                continue
            assert container["command"][:2] == ["python", "-m"], template["name"]
            assert container["command"][2].startswith("steps.")
            for arg in container.get("args", []):
                assert not re.search(r"\b(sh|bash)\b -c", arg)


def substitute(args: list[str], values: dict[str, str]) -> list[str]:
    """Argo's substitution: each `{{inputs.parameters.X}}` replaced inside its own argv element."""
    return [re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}", lambda m: values[m.group(1)], arg) for arg in args]


def test_a_hostile_parameter_value_stays_one_argv_element(reference):
    workflow = manifests(reference, "workflow")[0]
    for template in workflow["spec"]["templates"]:
        if "container" not in template:
            continue
        inputs = [p["name"] for p in template.get("inputs", {}).get("parameters", [])]
        args = template["container"]["args"]
        argv = substitute(args, {name: EVIL for name in inputs})
        assert len(argv) == len(args)
        for original, final in zip(args, argv):
            if original == "{{inputs.parameters." + original[len("{{inputs.parameters."):-2] + "}}":
                assert final == EVIL


def test_gpu_pods_get_limits_shm_selector_and_tolerations(reference):
    workflow = manifests(reference, "workflow")[0]
    train = next(t for t in workflow["spec"]["templates"] if t["name"] == "train")
    limits = train["container"]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "{{inputs.parameters.gpus}}"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in train["container"]["volumeMounts"]
    assert train["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}]
    assert train["priorityClassName"] == "gpu-training"
    assert train["nodeSelector"] == {"nvidia.com/gpu.memory": "49140"}
    assert train["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "privileged" not in yaml.safe_dump(workflow).replace("privileged: false", "")


def test_hf_token_only_from_a_secret(reference):
    text = render(reference, "all")
    for document in manifests(reference, "all"):
        for template in templates_of(document):
            for env in template.get("container", {}).get("env", []):
                if env["name"] == "HF_TOKEN":
                    assert "value" not in env
                    assert env["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token",
                                                                "optional": template["name"] not in ("upload", "publish-scores")}
    assert "hf_" not in text.lower().replace("hf_home", "").replace("hf_token", "")


def test_each_run_writes_under_its_own_folder(reference):
    workflow = manifests(reference, "workflow")[0]
    for template in workflow["spec"]["templates"]:
        for arg in template.get("container", {}).get("args", []):
            if arg.startswith("/mnt/workspace/") and not arg.startswith("/mnt/workspace/history/"):
                assert arg.startswith("/mnt/workspace/runs/{{workflow.name}}/"), (template["name"], arg)


def test_baseline_eval_does_not_wait_for_training(reference):
    workflow = manifests(reference, "workflow")[0]
    dag = next(t for t in workflow["spec"]["templates"] if t["name"] == "pipeline")["dag"]
    tasks = {t["name"]: t for t in dag["tasks"]}
    assert tasks["eval-baseline"]["depends"] == "plan-eval"
    assert "train" not in tasks["plan-eval"].get("depends", "")
    items = {p["name"]: p["value"] for p in tasks["eval-baseline"]["arguments"]["parameters"]}["items"]
    assert items == "{{tasks.plan-eval.outputs.parameters.baseline-items}}"
    assert "merge-lora" in tasks["eval-finetuned"]["depends"]
    assert tasks["train"]["depends"] == "convert-dataset && memory-gate"


def test_ui_form_parameters_have_descriptions_and_enums(reference):
    template = manifests(reference, "template")[0]
    params = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    assert all(p.get("description") for p in params.values())
    assert params["gpus"]["enum"][:3] == ["1", "2", "3"] and params["gpus"]["value"] == "3"
    assert params["eval_engine"]["enum"] == ["vllm", "hf"]
    assert params["gate_mode"]["enum"] == ["fail", "warn"]
    assert yaml.safe_load(params["subjects"]["value"]) == ["math"]


def test_manifest_size_does_not_grow_with_subjects(reference):
    def rendered_size(subjects: list[str]) -> int:
        ev = reference.eval.model_copy(update={"subjects": subjects})
        return len(render(reference.model_copy(update={"eval": ev}), "workflow"))

    # the list appears once, as a parameter value: no task or template per subject
    growth = rendered_size(list(SUBJECTS)) - rendered_size(["math"])
    assert growth == len(json.dumps(list(SUBJECTS), separators=(",", ":"))) - len('["math"]')


def test_eval_parallelism_bounds_only_the_fan_out(reference):
    limited = reference.model_copy(update={"eval": reference.eval.model_copy(update={"parallelism": 2})})
    templates = {t["name"]: t for t in manifests(limited, "workflow")[0]["spec"]["templates"]}
    assert templates["eval-fanout"]["parallelism"] == 2
    assert templates["eval-fanout"]["dag"]["tasks"][0]["withParam"] == "{{inputs.parameters.items}}"
    assert "parallelism" not in templates["pipeline"]


def test_cron_runs_the_benchmark_template(reference):
    cron = manifests(reference, "cron")[0]
    assert cron["spec"]["schedules"] == ["0 3 * * 1"]
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == "gemma2-2b-acereason-math-benchmark"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize(("enabled", "target", "expected"), [
    (True, "hub", "your-org/gemma-2-2b-acereason-math"), (False, "hub", ""), (True, "local", "")])
def test_cron_rebenchmarks_only_a_model_published_to_the_hub(reference, enabled, target, expected):
    upload = reference.upload.model_copy(update={"enabled": enabled, "target": target})
    template = manifests(reference.model_copy(update={"upload": upload}), "template")[1]
    params = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert params["finetuned_model"] == expected


def test_scores_reach_the_model_card_after_aggregate(reference):
    workflow = manifests(reference, "workflow")[0]
    dag = next(t for t in workflow["spec"]["templates"] if t["name"] == "pipeline")["dag"]
    publish = next(t for t in dag["tasks"] if t["name"] == "publish-scores")
    # Only a succeeded aggregate is published (it succeeds on a regression too, recording it), and
    # only the summary.json that aggregate invocation wrote: its summary id is passed along.
    assert publish["depends"] == "upload && aggregate"
    assert publish["when"] == "{{workflow.parameters.upload_enabled}} == true"
    summary_id = "{{tasks.aggregate.outputs.parameters.summary-id}}"
    assert {p["name"]: p["value"] for p in publish["arguments"]["parameters"]}["summary_id"] == summary_id
    template = next(t for t in workflow["spec"]["templates"] if t["name"] == "publish-scores")
    args = template["container"]["args"]
    assert args[0] == "--card-only"
    assert args[args.index("--summary") + 1] == "/mnt/workspace/runs/{{workflow.name}}/summary/summary.json"
    assert args[args.index("--summary-id") + 1] == "{{inputs.parameters.summary_id}}"


@pytest.mark.parametrize("kind, entrypoint, verdict_depends", [
    ("workflow", "pipeline", "aggregate && publish-scores"), ("template", "benchmark", "aggregate")])
def test_a_regression_fails_the_run_in_a_last_verdict_task(reference, kind, entrypoint, verdict_depends):
    """aggregate records a regression and succeeds; `verdict` fails the run on it, after publishing,
    in the pipeline and in the re-benchmark the CronWorkflow runs."""
    rendered = next(m for m in manifests(reference, kind) if m["spec"]["entrypoint"] == entrypoint)
    templates = {t["name"]: t for t in rendered["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates[entrypoint]["dag"]["tasks"]}
    assert tasks["verdict"]["depends"] == verdict_depends
    assert not [name for name, t in tasks.items() if "verdict" in t.get("depends", "")]  # the last task
    aggregate_args = templates["aggregate"]["container"]["args"]
    assert aggregate_args[aggregate_args.index("--on-regression") + 1] == "record"
    assert templates["aggregate"]["outputs"]["parameters"] == [
        {"name": "summary-id", "valueFrom": {"path": "/mnt/workspace/runs/{{workflow.name}}/summary/summary.id"}}]
    assert templates["verdict"]["container"]["command"] == ["python", "-m", "steps.verdict"]
