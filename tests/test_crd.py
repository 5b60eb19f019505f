"""The CRD schemas: every rendered manifest is what the API server accepts, and the shipped copy is current."""
from __future__ import annotations

from pathlib import Path

import pytest

from workflows import crd
from workflows.check import Section, check_pipeline
from workflows.config import load_pipeline
from workflows.render import manifests
from workflows.schema import validate_manifest

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "configs" / "pipelines").glob("*.yaml"))
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
SHIPPED = {"workflow.argoproj.io_v1alpha1.json.gz", "workflowtemplate.argoproj.io_v1alpha1.json.gz",
           "cronworkflow.argoproj.io_v1alpha1.json.gz", "jobset.jobset.x-k8s.io_v1alpha2.json.gz"}


@pytest.fixture(scope="module")
def fresh_schemas(shared_data, tmp_path_factory) -> Path:
    """The schemas generated now from ../shared/data/crds, the CRDs a cluster installs."""
    out = tmp_path_factory.mktemp("crds")
    crd.generate((shared_data / "crds").glob("*.yaml"), out)
    return out


def reference_workflow() -> dict:
    return manifests(load_pipeline(REFERENCE), "workflow")[0]


def template(manifest: dict, name: str) -> dict:
    return next(t for t in manifest["spec"]["templates"] if t["name"] == name)


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.stem)
def test_every_rendered_manifest_passes_the_crds_from_shared(pipeline, fresh_schemas):
    for document in manifests(load_pipeline(pipeline), "all"):
        assert crd.validate(document, fresh_schemas) == [], document["kind"]


def test_the_shipped_schemas_equal_a_fresh_generation(fresh_schemas):
    fresh = {p.name: p.read_bytes() for p in fresh_schemas.glob("*.json.gz")}
    shipped = {p.name: p.read_bytes() for p in crd.SCHEMA_DIR.glob("*.json.gz")}
    assert set(shipped) == SHIPPED
    assert shipped == fresh, "workflows/crds/ is stale: run `make crds` (python -m workflows.crd ../shared/data/crds)"


def test_a_placeholder_quantity_is_refused_as_the_controller_refuses_it():
    workflow = reference_workflow()
    template(workflow, "train")["container"]["resources"]["limits"]["nvidia.com/gpu"] = "{{inputs.parameters.gpus}}"
    problems = crd.validate(workflow)
    assert len(problems) == 1 and "resources.limits.nvidia.com/gpu" in problems[0] and "does not match" in problems[0]


def test_unknown_fields_are_refused_and_int_or_string_takes_both():
    workflow = reference_workflow()
    template(workflow, "train")["container"]["imagePulPolicy"] = "Always"
    assert any("'imagePulPolicy' was unexpected" in p for p in crd.validate(workflow))
    workflow = reference_workflow()
    template(workflow, "train")["container"]["resources"]["limits"]["cpu"] = 24
    template(workflow, "train")["retryStrategy"]["limit"] = "3"
    assert crd.validate(workflow) == []


def test_the_schema_is_picked_by_api_version_and_kind():
    jobset = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "x"},
              "spec": {"replicatedJobs": [{"name": "node", "replicas": 2, "template": {"spec": {
                  "template": {"spec": {"containers": [{"name": "main", "image": "i"}]}}}}}]}}
    assert crd.validate(jobset) == []
    jobset["spec"]["replicatedJobs"][0]["replica"] = 2
    assert any("'replica' was unexpected" in p for p in crd.validate(jobset))
    with pytest.raises(crd.NoSchema, match="no CRD schema for apiVersion 'v1' kind 'ConfigMap'"):
        crd.validate({"apiVersion": "v1", "kind": "ConfigMap"})
    assert not crd.has_schema({"apiVersion": "argoproj.io/v1alpha2", "kind": "Workflow"})


def test_lint_uses_the_shipped_schemas_without_shared(monkeypatch):
    monkeypatch.delenv("TUNEBENCH_ARGO_SCHEMA", raising=False)
    monkeypatch.setattr("workflows.schema.find_schema_file", lambda explicit=None: None)
    workflow = reference_workflow()
    assert validate_manifest(workflow) == []
    template(workflow, "merge-lora")["container"]["resources"]["requests"]["memory"] = "{{inputs.parameters.memory}}"
    assert any("requests.memory" in p for p in validate_manifest(workflow))
    monkeypatch.setattr("workflows.check._axolotl_section", lambda cfg: Section("Axolotl (not under test)"))
    report = check_pipeline(REFERENCE)
    notes = {section.note for section in report.sections[2:]}
    assert notes == {"Argo v4.1.2 CRD schemas, strict"}
