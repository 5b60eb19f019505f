"""A JobSet `resource` template read back: Argo's success/failure conditions, and the group of local
processes the runner emulates (workflows/runner/jobset.py). Pure data, no Hera and no pipeline config,
so the validator and the runner depend on it and not on the builder (workflows/jobset.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

API_VERSION = "jobset.x-k8s.io/v1alpha2"
KIND = "JobSet"
DELETE_ACTION = "delete"
# The JobSet is `{{workflow.name}}` + NAME_SUFFIX; its one replicated job is REPLICATED_JOB.
NAME_SUFFIX = "-train"
REPLICATED_JOB = "node"
# What JobSet's admission webhook (v0.12) refuses and its CRD schema does not say: a failure policy
# rule's name, and generated pod names past a DNS-1035 label.
RULE_NAME = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
RULE_NAME_MAX = 128
POD_NAME_MAX = 63
# The random part Argo appends to a generateName, and the Job controller to an Indexed pod's name.
GENERATED_SUFFIX = 5


def longest_pod_name(workflow_name_length: int, nodes: int) -> int:
    """The webhook's check: `<jobset>-<replicated job>-<job index>-<pod index>-abcde` for the last node."""
    return (workflow_name_length + len(NAME_SUFFIX) + len(f"-{REPLICATED_JOB}-0-{nodes - 1}")
            + 1 + GENERATED_SUFFIX)


def admission_problems(manifest: dict[str, Any]) -> list[str]:
    """What JobSet's webhook refuses in a manifest that its CRD schema lets through: failure policy rule names."""
    rules = ((manifest.get("spec") or {}).get("failurePolicy") or {}).get("rules") or []
    # A rule without a name is named `failurePolicyRuleN` by the webhook's defaulting, before it validates.
    names = [str(rule["name"]) for rule in rules if isinstance(rule, dict) and rule.get("name")]
    problems = [f"spec.failurePolicy.rules name {name!r}: JobSet's webhook requires a letter, then letters, digits, "
                f"'_', ',' or ':', ending in a letter, digit or '_', at most {RULE_NAME_MAX} characters"
                for name in names if len(name) > RULE_NAME_MAX or not RULE_NAME.fullmatch(name)]
    problems += [f"spec.failurePolicy.rules name {name!r}: used twice; JobSet's webhook requires unique names"
                 for name in sorted({n for n in names if names.count(n) > 1})]
    return problems


# --- the resource template's conditions, as Argo's executor evaluates them --------------------------------

def condition_holds(condition: str, resource: dict[str, Any]) -> bool:
    """Argo's successCondition/failureCondition: comma-separated `path op value` requirements, all of
    which must hold (Argo parses them as a label selector and reads each path from the resource's JSON).
    Supported ops: `==`, `=`, `!=`; a missing path is the empty string, as Argo's gjson lookup gives."""
    for requirement in (part.strip() for part in condition.split(",")):
        for op in ("!=", "==", "="):
            if op in requirement:
                path, expected = (side.strip() for side in requirement.split(op, 1))
                break
        else:
            raise ValueError(f"condition {condition!r}: {requirement!r} is not `path == value` or `path != value`")
        value: Any = resource
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        actual = "" if value is None else str(value)
        if (actual == expected) != (op != "!="):
            return False
    return True


# --- reading a JobSet back: what the local runner emulates ----------------------------------------------------

@dataclass(frozen=True)
class JobSetPlan:
    """What the local group needs from the manifest."""

    name: str
    nodes: int
    pod_spec: dict[str, Any]
    max_restarts: int
    fail_exit_codes: frozenset[int]
    fail_on_deadline: bool
    deadline_s: float | None
    success_condition: str
    failure_condition: str


def _first(items: Any, where: str) -> dict[str, Any]:
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        raise ValueError(f"{where}: the local runner emulates exactly one")
    return items[0]


def _fail_exit_codes(job: dict[str, Any], container: str) -> frozenset[int]:
    codes: set[int] = set()
    for rule in (job.get("podFailurePolicy") or {}).get("rules") or []:
        on_exit = rule.get("onExitCodes")
        if rule.get("action") != "FailJob" or not on_exit:
            continue
        if on_exit.get("operator") != "In" or on_exit.get("containerName") not in (None, container):
            raise ValueError("podFailurePolicy: the local runner emulates FailJob rules `onExitCodes` with operator In")
        codes.update(int(code) for code in on_exit.get("values") or [])
    return frozenset(codes)


def plan(template: dict[str, Any]) -> JobSetPlan:
    """The group a `resource` template describes; ValueError naming what is not emulated."""
    resource = template.get("resource") or {}
    if resource.get("action") != "apply":
        raise ValueError(f"action {resource.get('action')!r}: the local runner emulates `apply` of a JobSet")
    manifest = yaml.safe_load(resource.get("manifest") or "") or {}
    if (manifest.get("apiVersion"), manifest.get("kind")) != (API_VERSION, KIND):
        raise ValueError(f"a {manifest.get('kind')!r} ({manifest.get('apiVersion')}) manifest: the local runner "
                         f"emulates only {KIND} ({API_VERSION})")
    for key in ("successCondition", "failureCondition"):
        if not resource.get(key):
            raise ValueError(f"no {key}: the runner would not know when the JobSet is done")
    spec = manifest.get("spec") or {}
    replicated = _first(spec.get("replicatedJobs"), "spec.replicatedJobs")
    if int(replicated.get("replicas", 1)) != 1:
        raise ValueError("spec.replicatedJobs[0].replicas: the local runner emulates one Job")
    job = (replicated.get("template") or {}).get("spec") or {}
    nodes = int(job.get("parallelism", 1))
    if int(job.get("completions", nodes)) != nodes or job.get("completionMode") != "Indexed":
        raise ValueError("the Job must be Indexed with completions = parallelism (one pod per node)")
    pod_spec = (job.get("template") or {}).get("spec") or {}
    container = _first(pod_spec.get("containers"), "the pod's containers")
    failure_policy = spec.get("failurePolicy") or {}
    fail_reasons: set[str] = set()
    for rule in failure_policy.get("rules") or []:
        if rule.get("action") != "FailJobSet":
            raise ValueError(f"failurePolicy rule action {rule.get('action')!r}: the local runner emulates FailJobSet")
        fail_reasons.update(rule.get("onJobFailureReasons") or [])
    fail_codes = _fail_exit_codes(job, container.get("name", ""))
    deadline = job.get("activeDeadlineSeconds")
    return JobSetPlan(
        name=str((manifest.get("metadata") or {}).get("name", "jobset")), nodes=nodes, pod_spec=pod_spec,
        max_restarts=int(failure_policy.get("maxRestarts", 0)),
        fail_exit_codes=fail_codes if "PodFailurePolicy" in fail_reasons else frozenset(),
        fail_on_deadline="DeadlineExceeded" in fail_reasons,
        deadline_s=float(deadline) if deadline is not None else None,
        success_condition=resource["successCondition"], failure_condition=resource["failureCondition"])


def not_emulated(template: dict[str, Any]) -> str | None:
    """Why the runner cannot run this `resource` template, or None when it can."""
    try:
        plan(template)
    except (ValueError, TypeError, yaml.YAMLError) as error:
        return f"resource template '{template.get('name')}': {error}"
    return None


def _deletes_a_jobset(template: dict[str, Any] | None) -> bool:
    resource = (template or {}).get("resource") or {}
    if resource.get("action") != DELETE_ACTION:
        return False
    try:
        manifest = yaml.safe_load(resource.get("manifest") or "") or {}
    except yaml.YAMLError:
        return False
    return isinstance(manifest, dict) and (manifest.get("apiVersion"), manifest.get("kind")) == (API_VERSION, KIND)


def without_jobset_cleanup(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without an exit handler that only deletes JobSets: locally every node of a group has
    stopped when its task ends, so there is nothing left to delete. Any other exit handler is kept (the
    runner refuses it by name)."""
    spec = manifest.get("spec") if isinstance(manifest, dict) else None
    if not isinstance(spec, dict) or not spec.get("onExit"):
        return manifest
    templates = {t.get("name"): t for t in spec.get("templates") or [] if isinstance(t, dict)}
    handler = templates.get(spec["onExit"])
    if _deletes_a_jobset(handler):
        cleanup = {spec["onExit"]}
    elif handler is not None and "dag" in handler:
        used = {task.get("template") for task in handler["dag"].get("tasks") or []}
        if not used or not all(_deletes_a_jobset(templates.get(name)) for name in used):
            return manifest
        cleanup = {spec["onExit"], *used}
    else:
        return manifest
    stripped = {**manifest, "spec": {key: value for key, value in spec.items() if key != "onExit"}}
    stripped["spec"]["templates"] = [t for t in spec["templates"] if t.get("name") not in cleanup]
    return stripped
