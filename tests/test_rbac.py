"""`tunebench render --kind rbac`: what the workflow pods need, and nothing more."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from workflows.cli import app
from workflows.config import load_pipeline, parse_pipeline
from workflows.rbac import EXECUTOR_RULES, hf_secret_command, rbac_manifests
from workflows.render import manifests, render

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(REFERENCE)


def test_service_account_role_and_binding_in_the_pipelines_namespace(cfg):
    account, role, binding = rbac_manifests(cfg)
    assert [d["kind"] for d in (account, role, binding)] == ["ServiceAccount", "Role", "RoleBinding"]
    assert {d["metadata"]["namespace"] for d in (account, role, binding)} == {cfg.cluster.namespace}
    assert account["metadata"]["name"] == cfg.cluster.service_account
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": cfg.cluster.service_account,
                                    "namespace": cfg.cluster.namespace}]


def test_the_role_is_the_executors_minimum(cfg):
    role = rbac_manifests(cfg)[1]
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
                              "verbs": ["create", "patch"]}]
    assert role["rules"] == EXECUTOR_RULES
    text = yaml.safe_dump(role)
    assert "*" not in text and "secrets" not in text and "pods/exec" not in text


def test_the_workflows_run_as_that_service_account(cfg):
    account = rbac_manifests(cfg)[0]["metadata"]["name"]
    for document in manifests(cfg, "all"):
        if document["kind"] != "CronWorkflow":  # the cron runs the benchmark template, with its account
            assert document["spec"]["serviceAccountName"] == account


def test_custom_namespace_and_account_follow_the_config():
    data = yaml.safe_load(REFERENCE.read_text())
    data["cluster"].update(namespace="ml-team", service_account="bench-runner")
    custom = parse_pipeline(data)
    account, role, binding = rbac_manifests(custom)
    assert account["metadata"] == {**account["metadata"], "name": "bench-runner", "namespace": "ml-team"}
    assert role["metadata"]["name"] == "bench-runner-executor"
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": "bench-runner", "namespace": "ml-team"}
    assert "--namespace ml-team" in hf_secret_command(custom)


def test_render_rbac_yaml_carries_the_secret_line_and_no_token(cfg):
    text = render(cfg, "rbac")
    assert text.startswith("# ServiceAccount, Role and RoleBinding")
    assert "#   kubectl create secret generic hf-token --namespace argo --from-literal=token=\"$HF_TOKEN\"" in text
    documents = list(yaml.safe_load_all(text))
    assert documents == rbac_manifests(cfg)
    assert not any(d["kind"] == "Secret" for d in documents)


def test_all_stays_the_argo_objects(cfg):
    assert {d["kind"] for d in manifests(cfg, "all")} == {"Workflow", "WorkflowTemplate", "CronWorkflow"}


def test_cli_render_kind_rbac():
    result = CliRunner().invoke(app, ["render", str(REFERENCE), "--kind", "rbac"])
    assert result.exit_code == 0, result.output
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == ["ServiceAccount", "Role", "RoleBinding"]


def test_item4_prerequisites_hold_rbac_the_priority_class_and_the_existing_claims(cfg):
    documents = manifests(cfg, "prerequisites")
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding", "PriorityClass",
                                              "PersistentVolumeClaim", "PersistentVolumeClaim"]
    assert documents[:3] == rbac_manifests(cfg)
    priority = documents[3]
    train = next(t for t in manifests(cfg, "workflow")[0]["spec"]["templates"] if t["name"] == "train")
    assert priority["metadata"]["name"] == train["priorityClassName"] == "gpu-training"
    assert priority["value"] == 1000 and priority["preemptionPolicy"] == "Never" and priority["globalDefault"] is False
    claims = {d["metadata"]["name"]: d for d in documents[4:]}
    volumes = {v["persistentVolumeClaim"]["claimName"] for v in manifests(cfg, "workflow")[0]["spec"]["volumes"]}
    assert set(claims) == volumes == {"tunebench-workspace", "tunebench-hf-cache"}
    assert claims["tunebench-workspace"]["spec"] == {"accessModes": ["ReadWriteMany"],
                                                      "resources": {"requests": {"storage": "500Gi"}}}
    assert all(d["metadata"]["namespace"] == "argo" for d in documents if d["kind"] != "PriorityClass")


def test_item4_prerequisites_leave_out_what_the_config_does_not_name():
    data = yaml.safe_load(REFERENCE.read_text())
    del data["train"]["priority_class_name"], data["schedule"]
    data["cluster"]["workspace"] = {"claim_template": {"size": "100Gi"}}
    data["cluster"]["hf_cache"]["create_as"]["storage_class"] = "cephfs"
    documents = manifests(parse_pipeline(data), "prerequisites")
    assert [d["kind"] for d in documents] == ["ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim"]
    assert documents[-1]["spec"]["storageClassName"] == "cephfs"


def test_item4_cli_render_kind_prerequisites():
    result = CliRunner().invoke(app, ["render", str(REFERENCE), "--kind", "prerequisites"])
    assert result.exit_code == 0, result.output
    assert "| kubectl apply -f -" in result.stdout.splitlines()[3] and "create secret" in result.stdout
    assert len(list(yaml.safe_load_all(result.stdout))) == 6
