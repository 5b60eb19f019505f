"""The Python API against the loopback Argo Server: submit, from-template, apply, wait, status, retry."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from argo_stub import ArgoStub

from workflows.cluster import ArgoClient, ClusterError, ParameterError, ServerSettings
from workflows.cluster.client import is_unchanged, parse_overrides
from workflows.cluster.view import NodeTree, failure_lines, progress_table, status_view
from workflows.config import load_pipeline, parse_pipeline
from workflows.render import manifests
from workflows.schema import validate_manifest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
BODY_KEYS = ("workflow", "template", "cronWorkflow")


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(REFERENCE)


def variant(**changes) -> object:
    """The reference config with top-level sections replaced or removed (None)."""
    data = yaml.safe_load(REFERENCE.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return parse_pipeline(data)


@pytest.fixture
def stub():
    with ArgoStub(namespaces=("argo", "ml")) as server:
        yield server


@pytest.fixture
def argo(stub):
    with ArgoClient(ServerSettings.resolve(server=stub.url, token=stub.token, env={}, timeout=5)) as client:
        yield client


def sent_objects(stub: ArgoStub) -> list[dict]:
    """Every Argo object the client sent in a request body, with its kind."""
    kinds = {"workflow": "Workflow", "template": "WorkflowTemplate", "cronWorkflow": "CronWorkflow"}
    objects = []
    for request in stub.requests:
        body = request.json or {}
        for key in BODY_KEYS:
            if key in body:
                objects.append({"kind": kinds[key], "apiVersion": "argoproj.io/v1alpha1", **body[key]})
    return objects


def assert_bodies_valid(stub: ArgoStub) -> None:
    objects = sent_objects(stub)
    assert objects, "nothing was sent"
    for obj in objects:
        assert validate_manifest(obj) == [], obj["metadata"]
    assert stub.problems == []


# --- submit -----------------------------------------------------------------------------------

def test_submit_creates_the_rendered_workflow_and_returns_its_ui_link(stub, argo, cfg):
    run = argo.submit(cfg)
    assert run.name.startswith(f"{cfg.name}-") and run.namespace == "argo"
    assert run.url == f"{stub.url}/workflows/argo/{run.name}"
    (create,) = stub.calls("POST", "/api/v1/workflows/argo")
    sent = create.json["workflow"]
    assert sent == manifests(cfg, "workflow")[0], "what is submitted is exactly what render prints"
    assert argo.submit(str(REFERENCE)).name != run.name, "a path works too; every submission is a new run"
    assert_bodies_valid(stub)


def test_submit_overrides_parameters_and_checks_them_first(stub, argo, cfg):
    run = argo.submit(cfg, {"base_model": "google/gemma-2-9b", "gpus": "2"})
    params = {p["name"]: p["value"] for p in stub.stored("workflows", "argo", run.name)["spec"]["arguments"]["parameters"]}
    assert params["base_model"] == "google/gemma-2-9b" and params["gpus"] == "2"
    with pytest.raises(ParameterError, match="unknown parameter 'base_modle'"):
        argo.submit(cfg, {"base_modle": "x"})
    with pytest.raises(ParameterError, match="choose one of"):
        argo.submit(cfg, {"eval_engine": "tgi"})
    assert len(stub.calls("POST")) == 1, "bad parameters never reach the server"


def test_parse_overrides():
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_overrides(["novalue"])


def test_namespace_flag_moves_every_object(stub, cfg):
    settings = ServerSettings.resolve(server=stub.url, token=stub.token, namespace="ml", env={})
    with ArgoClient(settings) as argo:
        run = argo.submit(cfg)
        argo.apply(cfg)
    assert run.namespace == "ml" and stub.stored("workflows", "ml", run.name)["metadata"]["namespace"] == "ml"
    assert all(obj["metadata"]["namespace"] == "ml" for obj in sent_objects(stub))
    assert ("workflow-templates", "ml", cfg.name) in stub.objects


def test_submit_dry_run_only_lints(stub, argo, cfg):
    result = argo.submit(cfg, dry_run=True)
    assert result.name == "" and stub.calls("POST", "/api/v1/workflows/argo/lint")
    assert not [key for key in stub.objects if key[0] == "workflows"]
    assert_bodies_valid(stub)


def test_submit_from_template_needs_the_applied_template(stub, argo, cfg):
    with pytest.raises(ClusterError, match="tunebench apply"):
        argo.submit_from_template(cfg)
    argo.apply(cfg)
    run = argo.submit_from_template(cfg, {"base_model": "google/gemma-2-9b"})
    assert run.warnings == ()
    (submit,) = stub.calls("POST", "/submit")
    assert submit.json["resourceKind"] == "WorkflowTemplate" and submit.json["resourceName"] == cfg.name
    assert submit.json["submitOptions"]["parameters"] == ["base_model=google/gemma-2-9b"]
    stored = stub.stored("workflows", "argo", run.name)
    assert stored["spec"]["workflowTemplateRef"] == {"name": cfg.name}
    assert stored["metadata"]["labels"]["tunebench/pipeline"] == cfg.name
    with pytest.raises(ParameterError, match="unknown parameter 'gpus'"):
        argo.submit_from_template(cfg, {"gpus": "2"}, benchmark=True)  # the benchmark template has no training
    bench = argo.submit_from_template(cfg, {"finetuned_model": "org/x"}, benchmark=True)
    assert stub.stored("workflows", "argo", bench.name)["spec"]["workflowTemplateRef"]["name"] == f"{cfg.name}-benchmark"
    assert_bodies_valid(stub)


def test_submit_from_template_warns_when_the_applied_template_is_stale(stub, argo, cfg):
    argo.apply(cfg)
    changed = variant(eval={**yaml.safe_load(REFERENCE.read_text())["eval"], "subjects": ["math", "physics"]})
    run = argo.submit_from_template(changed)
    assert run.name and "tunebench apply" in run.warnings[0]


# --- apply -----------------------------------------------------------------------------------

def test_apply_creates_then_is_idempotent_then_updates(stub, argo, cfg):
    first = argo.apply(cfg)
    assert [(a.kind, a.name, a.action) for a in first] == [
        ("WorkflowTemplate", cfg.name, "created"),
        ("WorkflowTemplate", f"{cfg.name}-benchmark", "created"),
        ("CronWorkflow", f"{cfg.name}-rebenchmark", "created"),
    ]
    versions = {key: obj["metadata"]["resourceVersion"] for key, obj in stub.objects.items()}
    second = argo.apply(cfg)
    assert [a.action for a in second] == ["unchanged"] * 3
    assert {key: obj["metadata"]["resourceVersion"] for key, obj in stub.objects.items()} == versions
    assert not stub.calls("PUT"), "unchanged objects are not rewritten"

    data = yaml.safe_load(REFERENCE.read_text())
    data["schedule"]["crons"] = ["0 4 * * 2"]
    third = argo.apply(parse_pipeline(data))
    assert [a.action for a in third] == ["unchanged", "unchanged", "updated"]
    (put,) = stub.calls("PUT")
    assert put.json["cronWorkflow"]["metadata"]["resourceVersion"] == versions[("cron-workflows", "argo", f"{cfg.name}-rebenchmark")]
    assert stub.stored("cron-workflows", "argo", f"{cfg.name}-rebenchmark")["spec"]["schedules"] == ["0 4 * * 2"]
    assert_bodies_valid(stub)


def test_apply_creates_templates_before_the_cron_that_references_them(stub, argo, cfg):
    argo.apply(cfg)
    posts = [r.path for r in stub.calls("POST")]
    assert posts == ["/api/v1/workflow-templates/argo", "/api/v1/workflow-templates/argo", "/api/v1/cron-workflows/argo"]


def test_apply_dry_run_lints_and_changes_nothing(stub, argo, cfg):
    planned = argo.apply(cfg, dry_run=True)
    assert [a.action for a in planned] == ["would create"] * 3
    assert "lint skipped" in planned[2].note  # its template does not exist yet
    assert stub.objects == {}
    assert len(stub.calls("POST", "/workflow-templates/argo/lint")) == 2
    argo.apply(cfg)
    data = yaml.safe_load(REFERENCE.read_text())
    data["description"] = "new words"
    planned = argo.apply(parse_pipeline(data), dry_run=True)
    assert [a.action for a in planned] == ["would update"] * 3
    assert not stub.calls("PUT")
    assert stub.calls("POST", "/cron-workflows/argo/lint")


def test_apply_keeps_an_operators_suspend(stub, argo, cfg):
    argo.apply(cfg)
    cron = stub.stored("cron-workflows", "argo", f"{cfg.name}-rebenchmark")
    cron["spec"]["suspend"] = True  # paused from the UI
    assert [a.action for a in argo.apply(cfg)][2] == "unchanged"
    data = yaml.safe_load(REFERENCE.read_text())
    data["schedule"]["timezone"] = "Europe/Berlin"
    result = argo.apply(parse_pipeline(data))
    assert result[2].action == "updated"
    assert stub.stored("cron-workflows", "argo", f"{cfg.name}-rebenchmark")["spec"]["suspend"] is True


def test_apply_without_schedule_reports_a_leftover_cron(stub, argo, cfg):
    argo.apply(cfg)
    results = argo.apply(variant(schedule=None))
    assert [a.action for a in results] == ["unchanged", "unchanged", "not in config"]
    assert "argo cron delete" in results[2].note


def test_unchanged_ignores_server_metadata_and_omitted_empties(cfg):
    ours = manifests(cfg, "template")[0]
    theirs = copy.deepcopy(ours)
    theirs["metadata"].update(uid="u", resourceVersion="9", generation=3, creationTimestamp="2025-01-01T00:00:00Z")
    theirs["metadata"]["labels"]["workflows.argoproj.io/creator"] = "someone"
    theirs["status"] = {}
    ours_with_empties = copy.deepcopy(ours)
    ours_with_empties["spec"]["hooks"] = {}
    assert is_unchanged("WorkflowTemplate", ours_with_empties, theirs)
    theirs["spec"]["templates"][0]["container"]["image"] = "other:1"
    assert not is_unchanged("WorkflowTemplate", ours, theirs)
    theirs = copy.deepcopy(ours)
    theirs["metadata"]["labels"]["tunebench/pipeline"] = "renamed"
    assert not is_unchanged("WorkflowTemplate", ours, theirs)


# --- follow, status, retry ----------------------------------------------------------------------

def test_wait_follows_to_success_with_updates(stub, argo, cfg):
    run = argo.submit(cfg)
    phases = []
    final = argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30,
                      on_update=lambda wf: phases.append(wf["status"]["phase"]))
    assert final["status"]["phase"] == "Succeeded"
    assert phases[0] == "Running" and phases[-1] == "Succeeded" and len(phases) > 3
    tree = NodeTree.of(final)
    tasks = [node["displayName"] for node in tree.tasks()]
    assert {"convert-dataset", "memory-gate", "train", "merge-lora", "eval-baseline", "aggregate"} <= set(tasks)
    baseline = next(node for node in tree.tasks() if node["displayName"] == "eval-baseline")
    assert tree.counts(baseline) == (2, 2), "a fan-out's items, not its dependents"


def test_wait_reports_the_failed_node_and_retry_keeps_the_succeeded(stub, argo, cfg):
    stub.fail_task = {"train": "OOMKilled (exit code 137)"}
    run = argo.submit(cfg)
    final = argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)
    assert final["status"]["phase"] == "Failed"
    assert failure_lines(final) == ["train: OOMKilled (exit code 137)"]
    before = {n["displayName"]: n for n in final["status"]["nodes"].values()}
    retried = argo.retry(run.name)
    assert retried.name == run.name and retried.url.endswith(f"/workflows/argo/{run.name}")
    (put,) = stub.calls("PUT", "/retry")
    assert put.json.get("restartSuccessful", False) is False
    final = argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)
    assert final["status"]["phase"] == "Succeeded"
    after = {n["displayName"]: n for n in final["status"]["nodes"].values()}
    assert after["convert-dataset"]["startedAt"] == before["convert-dataset"]["startedAt"]
    with pytest.raises(ClusterError, match="must be Failed/Error"):
        argo.retry(run.name)


def test_failure_hints_for_the_meaningful_exit_codes(stub, argo, cfg):
    stub.fail_task = {"memory-gate": "Error (exit code 3)"}
    run = argo.submit(cfg)
    final = argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)
    (line,) = failure_lines(final)
    assert line.startswith("memory-gate: Error (exit code 3) -> the memory gate closed")


def test_wait_timeout_is_bounded(stub, argo, cfg):
    from workflows.cluster.client import WaitTimeout

    run = argo.submit(cfg)
    with pytest.raises(WaitTimeout, match=f"tunebench status {run.name}"):
        argo.wait(run.name, poll_interval=0.001, timeout=0, sleep=lambda _: None)


def test_wait_rides_out_a_few_server_blips(stub, argo, cfg):
    run = argo.submit(cfg)
    stub.inject(503, "etcd leader changed", method="GET", times=2)
    assert argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)["status"]["phase"] == "Succeeded"
    stub.inject(403, "forbidden", method="GET")
    with pytest.raises(ClusterError, match="403"):
        argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)


def test_status_view_and_progress_table_render(stub, argo, cfg):
    from rich.console import Console

    stub.fail_task = {"train": "OOMKilled (exit code 137)"}
    run = argo.submit(cfg)
    final = argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)
    console = Console(width=160, record=True, color_system=None)
    console.print(status_view(final, run.url))
    console.print(progress_table(final))
    text = console.export_text()
    assert run.url in text and "OOMKilled (exit code 137)" in text
    assert "train(0)" in text and "Omitted" in text and "7m05s" in text


def test_live_view_on_a_terminal(stub, argo, cfg):
    import io

    from rich.console import Console

    from workflows.cluster.view import Follower

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    run = argo.submit(cfg)
    with Follower(console) as follower:
        assert follower.live_mode
        argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, on_update=follower.update, timeout=30)
    assert "aggregate" in out.getvalue() and "Succeeded" in out.getvalue()


def test_list_workflows_newest_first_and_by_pipeline(stub, argo, cfg):
    first = argo.submit(cfg)
    second = argo.submit(cfg)
    stub.objects[("workflows", "argo", "other-abc")] = {"metadata": {"name": "other-abc", "namespace": "argo",
                                                                    "creationTimestamp": "2030-01-01T00:00:00Z"},
                                                       "spec": {"entrypoint": "main"}}
    names = [wf["metadata"]["name"] for wf in argo.list_workflows(prefix=f"{cfg.name}-")]
    assert names == [second.name, first.name]
    assert len(argo.list_workflows()) == 3 and len(argo.list_workflows(limit=1)) == 1
    assert "fields=" in stub.calls("GET", "/api/v1/workflows/argo")[0].query
    listed = argo.list_workflows(prefix=f"{cfg.name}-")[0]
    assert "nodes" not in listed["status"], "a list does not carry every node of every workflow"


# --- the token ---------------------------------------------------------------------------------

def test_token_travels_only_in_the_authorization_header(stub, argo, cfg, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    argo.apply(cfg)
    run = argo.submit(cfg)
    argo.wait(run.name, poll_interval=0.001, sleep=lambda _: None, timeout=30)
    argo.submit_from_template(cfg)
    assert len(stub.requests) > 8
    for request in stub.requests:
        assert request.headers["Authorization"] == f"Bearer {stub.token}"
        others = {k: v for k, v in request.headers.items() if k != "Authorization"}
        assert stub.token not in json.dumps(others) + request.path + request.query + request.body
    assert stub.token not in caplog.text
    assert stub.token not in repr(argo) + repr(argo.settings)
