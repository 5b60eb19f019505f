"""Multi-node training as a JobSet (jobset.x-k8s.io/v1alpha2), created and watched by an Argo `resource` template.

`train.nodes > 1` replaces the train pod by a JobSet of one replicated Job of `nodes`
pods (an Indexed Job), each running `python -m steps.train` with exactly the train pod's
container, volumes, /dev/shm, env, placement and PriorityClass (taken from the train
step's template, never restated here). The workflow's parameters reach the nodes through
a file a `train-request` step writes first, not through the manifest's text. The
rendezvous is node 0's stable DNS name (`network.enableDNSHostnames`), the node rank the
pod's JOB_COMPLETION_INDEX. workflows/argo/jobset.py reads such a JobSet back (the
conditions, the group the local runner emulates); this module builds it and lints what it applies.

Failure semantics:
- any other failure of a node fails its Job (`backoffLimit: 0`), and JobSet restarts the
  whole group (`failurePolicy.maxRestarts`); each node resumes from the newest checkpoint;
- the step's bad-input and verdict exit codes fail the Job at once (`podFailurePolicy` →
  `FailJob`), and that Job failure reason fails the JobSet (→ `FailJobSet`), no restart;
- a node past `train.timeout` fails its Job (`DeadlineExceeded`) and the JobSet (JobSet
  v0.12 has no JobSet-wide deadline; the Argo template's own deadline bounds the restarts);
- the workflow's exit handler deletes the JobSet when the workflow did not succeed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import yaml
from hera.workflows import DAG, Container, Resource, Task

from steps.contract import VERDICT_EXIT_CODES, pipeline_labels
from workflows.argo.jobset import API_VERSION, DELETE_ACTION, KIND, NAME_SUFFIX, REPLICATED_JOB, admission_problems
from workflows.config import PipelineConfig, VolumeSpec
from workflows.templates import HF_CACHE_VOLUME, RUN, WORKSPACE_VOLUME, StepTemplate

TEMPLATE = "train-jobset"
DELETE_TEMPLATE = "delete-train-jobset"
REQUEST_TASK = "train-request"
REQUEST_FILE = RUN.train_request
EXIT_HANDLER = "exit-handler"
NAME = "{{workflow.name}}" + NAME_SUFFIX
CONTAINER = "train"
MASTER_PORT = 29500
SUCCESS_CONDITION = "status.terminalState == Completed"
FAILURE_CONDITION = "status.terminalState == Failed"
# VERDICT_EXIT_CODES, the steps' exit codes that no restart changes, fail the group; 1 and
# signals (a lost peer, an OOM kill, a preemption) restart it.
# Job failure reasons (batch/v1) that fail the JobSet instead of restarting it.
FAIL_JOBSET_REASONS = ("PodFailurePolicy", "DeadlineExceeded")
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
# How Argo names the claim of a volumeClaimTemplate: the pods of the JobSet mount that claim.
ARGO_CLAIM_NAME = "{{workflow.name}}-"


# What the workflow's service account does with JobSets, and nothing more: the executor of the
# `apply` template runs `kubectl apply` (get, then create or patch) and polls the JobSet with
# `kubectl get` for its conditions; the exit handler's `kubectl delete`.
RBAC_RULE: dict[str, Any] = {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"],
                             "verbs": ["create", "delete", "get", "patch"]}


def rank0_host(name: str = NAME) -> str:
    """Node 0's stable name: JobSet's pod hostname `<jobset>-<replicated job>-<job index>-<pod index>`
    under the JobSet's headless service (subdomain = the JobSet's name)."""
    return f"{name}-{REPLICATED_JOB}-0-0.{name}"


def _claim(name: str, spec: VolumeSpec) -> dict[str, Any]:
    claim = spec.existing_claim if spec.existing_claim is not None else ARGO_CLAIM_NAME + name
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def _pod_volumes(cfg: PipelineConfig, own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    volumes = [_claim(WORKSPACE_VOLUME, cfg.cluster.workspace)]
    if cfg.cluster.hf_cache is not None:
        volumes.append(_claim(HF_CACHE_VOLUME, cfg.cluster.hf_cache))
    return volumes + own


def _node_container(cfg: PipelineConfig, container: dict[str, Any]) -> dict[str, Any]:
    """The train container as one node of the group: its rendezvous flags, and GPUs as a literal."""
    node = copy.deepcopy(container)
    node["name"] = CONTAINER
    # Kubernetes expands $(VAR) in args from the container's env; the Job controller adds JOB_COMPLETION_INDEX.
    node["args"] = [*node.get("args", []), "--nodes", str(cfg.train.nodes), "--node-rank", "$(JOB_COMPLETION_INDEX)",
                    "--master-addr", "$(MASTER_ADDR)", "--master-port", "$(MASTER_PORT)"]
    node["env"] = [*node.get("env", []), {"name": "MASTER_ADDR", "value": rank0_host()},
                   {"name": "MASTER_PORT", "value": str(MASTER_PORT)}]
    resources = node.setdefault("resources", {})
    for bound in ("limits", "requests"):
        resources.setdefault(bound, {})[cfg.train.gpu_resource] = str(cfg.train.gpus)
    return node


def _labels(cfg: PipelineConfig) -> dict[str, str]:
    # The workflow label makes `argo logs` show every node's pod with the workflow's.
    return {**pipeline_labels(cfg.name), WORKFLOW_LABEL: "{{workflow.name}}"}


def jobset_manifest(cfg: PipelineConfig, train_template: dict[str, Any],
                    pod_security_context: dict[str, Any] | None) -> dict[str, Any]:
    """The JobSet of `cfg.train.nodes` pods, from the built train template (an Argo template dict)."""
    nodes = cfg.train.nodes
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # podFailurePolicy requires it; JobSet restarts the group instead
        "serviceAccountName": cfg.cluster.service_account,
        "containers": [_node_container(cfg, train_template["container"])],
        "volumes": _pod_volumes(cfg, train_template.get("volumes", [])),
    }
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        if train_template.get(field):
            pod_spec[field] = copy.deepcopy(train_template[field])
    if pod_security_context:
        pod_spec["securityContext"] = pod_security_context
    job_spec = {
        "completionMode": "Indexed",
        "parallelism": nodes,
        "completions": nodes,
        "backoffLimit": 0,
        "activeDeadlineSeconds": cfg.train.timeout,
        "podFailurePolicy": {"rules": [{
            "action": "FailJob",
            "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": list(VERDICT_EXIT_CODES)},
        }]},
        "template": {"metadata": {"labels": _labels(cfg)}, "spec": pod_spec},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": NAME, "labels": _labels(cfg)},
        "spec": {
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "successPolicy": {"operator": "All"},
            "failurePolicy": {
                "maxRestarts": cfg.train.max_restarts,
                "rules": [{"name": "NoRestartAfterAVerdictOrTheDeadline", "action": "FailJobSet",
                           "onJobFailureReasons": list(FAIL_JOBSET_REASONS)}],
            },
            "replicatedJobs": [{"name": REPLICATED_JOB, "replicas": 1,
                                "template": {"metadata": {"labels": _labels(cfg)}, "spec": job_spec}}],
        },
    }


def _manifest_text(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=1000)


def _template_dict(container: Container) -> dict[str, Any]:
    return container._build_template().model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class JobSetTraining:
    """The two templates of multi-node training: the request writer, then the JobSet."""

    request: Container
    jobset: Resource

    def tasks(self, depends: str, arguments: dict[str, str]) -> Task:
        """`train-request` (takes the train task's arguments), then `train` (the JobSet); returns `train`."""
        request = self.request(name=REQUEST_TASK, depends=depends, arguments=arguments)
        assert isinstance(request, Task)  # a template called inside a DAG makes a Task
        trained = self.jobset(name="train", depends=request.name)
        assert isinstance(trained, Task)
        return trained


def train_jobset(cfg: PipelineConfig, train: StepTemplate, pod_security_context: dict[str, Any] | None
                 ) -> JobSetTraining:
    """The train step across nodes. Its parameters go through a small container step into a file
    (steps.train --write-request), never into the JobSet's YAML (see TrainRequest in
    steps/training/distributed.py); the JobSet's pods run the train container on that file."""
    request = replace(
        train, name=REQUEST_TASK, image=cfg.cluster.images.light, args=(*train.args, "--write-request", REQUEST_FILE),
        gpus=None, patched_resources={}, shm_size=None, placement=None, priority_class=None, cpu="500m",
        memory="512Mi", retry=None, timeout_seconds=600, hub_token=False)
    node = replace(train, inputs=(), args=("--request", REQUEST_FILE), patched_resources={})
    # The restarts happen inside the JobSet; this deadline bounds all of them together.
    deadline = cfg.train.timeout * (cfg.train.max_restarts + 1)
    jobset = Resource(
        name=TEMPLATE,
        action="apply",
        set_owner_reference=True,
        success_condition=SUCCESS_CONDITION,
        failure_condition=FAILURE_CONDITION,
        manifest=_manifest_text(jobset_manifest(cfg, _template_dict(node.container(cfg)), pod_security_context)),
        active_deadline_seconds=deadline,
    )
    return JobSetTraining(request.container(cfg), jobset)


def delete_jobset() -> Resource:
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME}}
    return Resource(name=DELETE_TEMPLATE, action=DELETE_ACTION, flags=["--ignore-not-found"],
                    manifest=_manifest_text(manifest))


def exit_handler() -> DAG:
    """Deletes the JobSet when the workflow did not succeed (stopped, failed, past its deadline): no GPUs stay held."""
    delete = delete_jobset()
    with DAG(name=EXIT_HANDLER) as dag:
        delete(name="delete-jobset", when="{{workflow.status}} != Succeeded")
    return dag


# --- checking what the resource templates apply ---------------------------------------------------------------

def resource_manifest_problems(document: dict[str, Any]) -> list[str]:
    """Each `apply`/`create` resource template's manifest against its CRD's shipped schema (strict), as lint
    reports it; a manifest of a kind without a shipped schema is named, not passed silently."""
    from workflows import crd

    problems = []
    for template in document.get("spec", {}).get("templates", []):
        resource = template.get("resource")
        if not resource or resource.get("action") not in ("apply", "create"):
            continue
        where = f"template '{template['name']}' manifest"
        try:
            manifest = yaml.safe_load(resource.get("manifest") or "")
        except yaml.YAMLError as error:
            problems.append(f"{where}: not YAML ({' '.join(str(error).split())})")
            continue
        try:
            problems += [f"{where}: {problem}" for problem in crd.validate(manifest)]
            if isinstance(manifest, dict) and (manifest.get("apiVersion"), manifest.get("kind")) == (API_VERSION, KIND):
                problems += [f"{where}: {problem}" for problem in admission_problems(manifest)]
        except crd.NoSchema as error:
            problems.append(f"{where}: {error}")
    return problems
