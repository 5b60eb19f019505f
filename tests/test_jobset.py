"""The multi-node manifest: a JobSet made from the train pod, watched by a `resource` template, deleted by the exit handler."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from workflows import crd, jobset
from workflows.argo.jobset import condition_holds
from workflows.check import check_pipeline
from workflows.config import ConfigError, load_pipeline, parse_pipeline
from workflows.render import manifests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOKE_2NODE = PROJECT_ROOT / "configs" / "pipelines" / "smoke-2node.yaml"
GEMMA = PROJECT_ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"


def _config(path: Path, **train):
    data = yaml.safe_load(path.read_text())
    data["train"].update(train)
    return parse_pipeline(data, str(path))


def _templates(workflow: dict) -> dict[str, dict]:
    return {template["name"]: template for template in workflow["spec"]["templates"]}


def _task(workflow: dict, dag: str, name: str) -> dict:
    return next(task for task in _templates(workflow)[dag]["dag"]["tasks"] if task["name"] == name)


@pytest.fixture(scope="module")
def gemma_on_4_nodes():
    return manifests(_config(GEMMA, nodes=4, gpus=8), "workflow")[0]


def _jobset(workflow: dict) -> dict:
    return yaml.safe_load(_templates(workflow)[jobset.TEMPLATE]["resource"]["manifest"])


def test_one_node_keeps_the_train_pod_and_has_no_exit_handler():
    workflow = manifests(load_pipeline(GEMMA), "workflow")[0]
    assert "container" in _templates(workflow)["train"] and jobset.TEMPLATE not in _templates(workflow)
    assert "onExit" not in workflow["spec"]


def test_the_train_task_applies_a_jobset_and_waits_for_its_terminal_state(gemma_on_4_nodes):
    task = _task(gemma_on_4_nodes, "pipeline", "train")
    template = _templates(gemma_on_4_nodes)[task["template"]]
    resource = template["resource"]
    assert resource["action"] == "apply" and resource["setOwnerReference"] is True
    assert resource["successCondition"] == "status.terminalState == Completed"
    assert resource["failureCondition"] == "status.terminalState == Failed"
    assert "retryStrategy" not in template  # JobSet restarts the group; a retried apply would only re-read it
    assert "inputs" not in template
    manifest = _jobset(gemma_on_4_nodes)
    assert (manifest["apiVersion"], manifest["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    assert manifest["metadata"]["name"] == "{{workflow.name}}-train"
    (replicated,) = manifest["spec"]["replicatedJobs"]
    job = replicated["template"]["spec"]
    assert (replicated["replicas"], job["completionMode"], job["parallelism"], job["completions"],
            job["backoffLimit"]) == (1, "Indexed", 4, 4, 0)
    assert manifest["spec"]["network"]["enableDNSHostnames"] is True


def test_each_node_runs_the_train_pod_of_one_node(gemma_on_4_nodes):
    """Same image, command, env, volumes, /dev/shm, placement and PriorityClass as the single-node train pod."""
    single = _templates(manifests(_config(GEMMA, gpus=8), "workflow")[0])["train"]
    pod = _jobset(gemma_on_4_nodes)["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [
        "--request", "/mnt/workspace/runs/{{workflow.name}}/train/request.json", "--nodes", "4",
        "--node-rank", "$(JOB_COMPLETION_INDEX)", "--master-addr", "$(MASTER_ADDR)", "--master-port", "$(MASTER_PORT)"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MASTER_ADDR"]["value"] == "{{workflow.name}}-train-node-0-0.{{workflow.name}}-train"
    assert [item for item in container["env"] if item["name"] not in ("MASTER_ADDR", "MASTER_PORT")] == \
        single["container"]["env"]
    for field in ("image", "command", "volumeMounts", "securityContext"):
        assert container[field] == single["container"][field], field
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"  # a literal: quantities take no placeholder
    assert single.get("affinity") and single.get("tolerations") and single.get("priorityClassName")
    for field in ("nodeSelector", "affinity", "tolerations", "priorityClassName"):
        assert pod.get(field) == single.get(field), field
    assert [v for v in pod["volumes"] if v["name"] == "dshm"] == single["volumes"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"workspace": "tunebench-workspace", "hf-cache": "tunebench-hf-cache"}  # gemma's existing claims
    assert pod["restartPolicy"] == "Never" and pod["securityContext"] == gemma_on_4_nodes["spec"]["securityContext"]
    labels = _jobset(gemma_on_4_nodes)["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["metadata"]["labels"]
    assert labels["workflows.argoproj.io/workflow"] == "{{workflow.name}}"  # `argo logs` finds every node


def test_a_claim_made_per_run_is_mounted_by_the_name_argo_gives_it():
    pod = _jobset(manifests(load_pipeline(SMOKE_2NODE), "workflow")[0])["spec"]["replicatedJobs"][0]["template"][
        "spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "workspace", "persistentVolumeClaim": {"claimName": "{{workflow.name}}-workspace"}}


def test_the_parameters_reach_the_nodes_through_a_file_never_through_the_manifests_text(gemma_on_4_nodes):
    """Argo substitutes a resource manifest's placeholders as text: a parameter with a quote and a line
    break would add fields to the pods. Only the workflow's name (a DNS name) is left in it."""
    manifest_text = _templates(gemma_on_4_nodes)[jobset.TEMPLATE]["resource"]["manifest"]
    assert set(re.findall(r"\{\{([^}]*)\}\}", manifest_text)) == {"workflow.name"}
    request = _task(gemma_on_4_nodes, "pipeline", "train-request")
    single_workflow = manifests(_config(GEMMA, gpus=8), "workflow")[0]
    single = _task(single_workflow, "pipeline", "train")
    assert request["arguments"] == single["arguments"] and request["depends"] == single["depends"]
    assert _task(gemma_on_4_nodes, "pipeline", "train")["depends"] == "train-request"
    writer = _templates(gemma_on_4_nodes)["train-request"]
    assert writer["container"]["args"] == [*_templates(single_workflow)["train"]["container"]["args"],
                                           "--write-request", "/mnt/workspace/runs/{{workflow.name}}/train/request.json"]
    assert "resources" not in writer["container"] or "nvidia.com/gpu" not in str(writer["container"]["resources"])


def test_verdicts_fail_the_jobset_at_once_and_other_failures_restart_the_group(gemma_on_4_nodes):
    spec = _jobset(gemma_on_4_nodes)["spec"]
    job = spec["replicatedJobs"][0]["template"]["spec"]
    assert job["podFailurePolicy"]["rules"] == [{"action": "FailJob", "onExitCodes": {
        "containerName": "train", "operator": "In", "values": [2, 3, 4]}}]
    assert spec["failurePolicy"]["maxRestarts"] == 2
    assert [(rule["action"], rule["onJobFailureReasons"]) for rule in spec["failurePolicy"]["rules"]] == [
        ("FailJobSet", ["PodFailurePolicy", "DeadlineExceeded"])]
    timeout = 8 * 3600
    assert job["activeDeadlineSeconds"] == timeout  # gemma's train.timeout, per attempt
    assert _templates(gemma_on_4_nodes)[jobset.TEMPLATE]["activeDeadlineSeconds"] == timeout * 3


def test_the_exit_handler_deletes_the_jobset_unless_the_workflow_succeeded(gemma_on_4_nodes):
    assert gemma_on_4_nodes["spec"]["onExit"] == jobset.EXIT_HANDLER
    task = _task(gemma_on_4_nodes, jobset.EXIT_HANDLER, "delete-jobset")
    assert task["when"] == "{{workflow.status}} != Succeeded"
    delete = _templates(gemma_on_4_nodes)[task["template"]]["resource"]
    assert delete["action"] == "delete" and delete["flags"] == ["--ignore-not-found"]
    assert yaml.safe_load(delete["manifest"])["metadata"]["name"] == _jobset(gemma_on_4_nodes)["metadata"]["name"]


def test_the_templates_carry_it_too_and_the_benchmark_has_no_training_to_clean_up():
    pipeline, benchmark = manifests(_config(GEMMA, nodes=2), "template")
    assert pipeline["spec"]["onExit"] == jobset.EXIT_HANDLER and jobset.TEMPLATE in _templates(pipeline)
    assert "onExit" not in benchmark["spec"]


def test_the_memory_gate_counts_every_gpu_of_every_node_and_the_form_cannot_change_them(gemma_on_4_nodes):
    assert {a["name"]: a["value"] for a in _task(gemma_on_4_nodes, "pipeline", "memory-gate")["arguments"]["parameters"]}[
        "gpus"] == "32"
    gpus = next(p for p in gemma_on_4_nodes["spec"]["arguments"]["parameters"] if p["name"] == "gpus")
    assert (gpus["value"], gpus["enum"]) == ("8", ["8"])


def test_nodes_need_a_volume_every_node_can_mount():
    data = yaml.safe_load(SMOKE_2NODE.read_text())
    data["cluster"]["workspace"]["claim_template"]["access_mode"] = "ReadWriteOnce"
    with pytest.raises(ConfigError, match="train.nodes 2 needs cluster.workspace.claim_template.access_mode "
                                          "ReadWriteMany"):
        parse_pipeline(data)
    data["cluster"]["workspace"] = {"existing_claim": "shared", "create_as": {"access_mode": "ReadWriteOnce"}}
    with pytest.raises(ConfigError, match="needs cluster.workspace.create_as.access_mode ReadWriteMany"):
        parse_pipeline(data)
    data["cluster"]["workspace"]["create_as"]["access_mode"] = "ReadWriteMany"
    assert parse_pipeline(data).train.nodes == 2


def test_rbac_grants_exactly_the_jobset_verbs_of_the_templates_and_only_for_multi_node():
    single = manifests(load_pipeline(GEMMA), "rbac")
    multi = manifests(_config(GEMMA, nodes=2), "rbac")
    role = next(m for m in multi if m["kind"] == "Role")
    assert jobset.RBAC_RULE in role["rules"]
    assert role["rules"][-1] == {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"],
                                 "verbs": ["create", "delete", "get", "patch"]}
    assert not any("jobsets" in rule["resources"] for m in single if m["kind"] == "Role" for rule in m["rules"])


# --- the JobSet CRD and its status -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_schemas(shared_data, tmp_path_factory) -> Path:
    """The JobSet schema generated now from ../shared/data/crds (the shipped one is checked against it in test_crd)."""
    out = tmp_path_factory.mktemp("crds")
    crd.generate([shared_data / "crds" / "jobset-v0.12.0-jobsets.yaml"], out)
    return out


@pytest.mark.parametrize("config, train", [(SMOKE_2NODE, {}), (GEMMA, {"nodes": 4, "gpus": 8})])
def test_rendered_jobsets_validate_against_the_v0_12_crd(fresh_schemas, config, train):
    workflow = manifests(_config(config, **train), "workflow")[0]
    assert crd.validate(_jobset(workflow), fresh_schemas) == []
    assert jobset.resource_manifest_problems(workflow) == []  # what lint checks, with the shipped schema


def test_lint_names_a_field_the_jobset_crd_does_not_know(monkeypatch):
    real = jobset.jobset_manifest

    def misspelled(*args, **kwargs):
        manifest = real(*args, **kwargs)
        manifest["spec"]["failurePolicy"]["maxRestart"] = 3
        return manifest

    monkeypatch.setattr(jobset, "jobset_manifest", misspelled)
    report = check_pipeline(SMOKE_2NODE)
    problems = [p for section in report.sections for p in section.problems]
    assert not report.ok
    assert any(p.startswith("template 'train-jobset' manifest: JobSet spec.failurePolicy:") and "maxRestart" in p
               for p in problems), problems



def test_lint_applies_jobsets_webhook_to_failure_policy_rule_names(monkeypatch):
    """JobSet v0.12's webhook refuses a rule name with '-' (the CRD schema has no pattern for it): the
    rendered JobSet's names pass, and lint names a hyphenated or repeated one before a cluster refuses it."""
    workflow = manifests(_config(GEMMA, nodes=4, gpus=8), "workflow")[0]
    assert [rule["name"] for rule in _jobset(workflow)["spec"]["failurePolicy"]["rules"]] == [
        "NoRestartAfterAVerdictOrTheDeadline"]
    real = jobset.jobset_manifest

    def hyphenated(*args, **kwargs):
        manifest = real(*args, **kwargs)
        rule = manifest["spec"]["failurePolicy"]["rules"][0]
        manifest["spec"]["failurePolicy"]["rules"] = [{**rule, "name": "no-restart"}, {**rule, "name": "Twice"},
                                                      {**rule, "name": "Twice"}]
        return manifest

    monkeypatch.setattr(jobset, "jobset_manifest", hyphenated)
    problems = jobset.resource_manifest_problems(manifests(_config(SMOKE_2NODE), "workflow")[0])
    assert len(problems) == 2, problems
    assert "rules name 'no-restart': JobSet's webhook requires a letter" in problems[0]
    assert "rules name 'Twice': used twice" in problems[1]


@pytest.mark.parametrize("nodes, longest", [(2, 36), (10, 36), (11, 35), (64, 35)])
def test_a_multi_node_name_leaves_room_for_jobsets_pod_names(nodes, longest):
    """JobSet's webhook refuses `<run>-train-node-0-<last index>-abcde` past 63 characters; the run is
    `<name>-xxxxx`. The longest name passes, one more character is refused at load, not at the train step."""
    data = yaml.safe_load(SMOKE_2NODE.read_text())
    data["train"]["nodes"] = nodes
    data["name"] = "a" * longest
    parse_pipeline(data)
    pod = f"{data['name']}-abcde-train-node-0-{nodes - 1}-abcde"
    assert len(pod) == 63  # the webhook's own construction, by hand
    data["name"] += "a"
    with pytest.raises(ConfigError, match=f"too long for train.nodes {nodes}: .* use at most {longest}"):
        parse_pipeline(data)
    data["train"]["nodes"] = 1
    assert parse_pipeline(data).train.nodes == 1


def test_a_multi_node_name_starts_with_a_letter():
    data = yaml.safe_load(SMOKE_2NODE.read_text())
    data["name"] = "7b-math"
    with pytest.raises(ConfigError, match="must start with a letter for train.nodes 2"):
        parse_pipeline(data)
    data["train"]["nodes"] = 1
    assert parse_pipeline(data).name == "7b-math"

# Status shapes as JobSet's controller writes them (replicatedJobsStatus, restarts, terminalState).
RUNNING = {"replicatedJobsStatus": [{"name": "node", "active": 1, "ready": 1, "succeeded": 0, "failed": 0}],
           "restarts": 0}
RESTARTING = {"replicatedJobsStatus": [{"name": "node", "active": 0, "ready": 0, "succeeded": 0, "failed": 1}],
              "restarts": 1, "restartsCountTowardsMax": 1,
              "conditions": [{"type": "StartupPolicyInProgress", "status": "False"}]}
COMPLETED = {"replicatedJobsStatus": [{"name": "node", "active": 0, "ready": 0, "succeeded": 1, "failed": 0}],
             "restarts": 1, "terminalState": "Completed",
             "conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted"}]}
FAILED = {"replicatedJobsStatus": [{"name": "node", "active": 0, "ready": 0, "succeeded": 0, "failed": 1}],
          "restarts": 2, "terminalState": "Failed",
          "conditions": [{"type": "Failed", "status": "True", "reason": "ReachedMaxRestarts"}]}


@pytest.mark.parametrize("status, verdict", [
    (None, "waiting"), (RUNNING, "waiting"), (RESTARTING, "waiting"), (COMPLETED, "succeeded"), (FAILED, "failed")])
def test_the_templates_conditions_read_the_jobset_status(gemma_on_4_nodes, status, verdict):
    resource = _templates(gemma_on_4_nodes)[jobset.TEMPLATE]["resource"]
    obj = {**_jobset(gemma_on_4_nodes), **({"status": status} if status is not None else {})}
    failed = condition_holds(resource["failureCondition"], obj)
    succeeded = condition_holds(resource["successCondition"], obj)
    assert {(False, False): "waiting", (True, False): "succeeded", (False, True): "failed"}[(succeeded, failed)] == verdict


@pytest.mark.parametrize("condition, holds", [
    ("status.terminalState == Completed", True), ("status.terminalState = Completed", True),
    ("status.terminalState != Failed", True), ("status.terminalState == Completed,status.restarts == 1", True),
    ("status.terminalState == Completed,status.restarts == 2", False), ("status.missing == x", False),
])
def test_conditions_follow_argos_requirement_syntax(condition, holds):
    assert condition_holds(condition, {"status": COMPLETED}) is holds


def test_a_condition_without_an_operator_is_refused():
    with pytest.raises(ValueError, match="is not `path == value`"):
        condition_holds("status.terminalState", {})
