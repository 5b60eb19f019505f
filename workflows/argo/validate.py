"""The one validator of Argo manifests, for `tunebench lint`, `tunebench run` and `submit --dry-run`.

`validate(manifest)` reads a Workflow (or WorkflowTemplate) dict into the model (model.py) and
collects every problem, each tagged: a **wiring error** (Argo would reject it or it cannot work:
unknown templates, tasks and parameters, cycles, references to outputs a task cannot see, missing
inputs) or **not emulated locally** (valid Argo that `tunebench run` does not run: script
templates, artifacts, `{{=...}}`, ...). `load_workflow` raises them all at once as a ManifestError,
before any task runs. Cluster-only fields (resources, node selectors, tolerations, security
contexts, pod GC, TTL, ...) are accepted and ignored.
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from workflows.argo.dag import ordered, sequence_items
from workflows.argo.durations import parse_duration
from workflows.argo.errors import ExpressionError, ManifestError
from workflows.argo.expr import DependsExpr, evaluate_when
from workflows.argo.model import InputParam, Mount, OutputParam, Task, Template, Workflow
from workflows.argo.subst import references, strings_in, substitute
from workflows.naming import object_name_problem
from workflows.argo.jobset import not_emulated as jobset_not_emulated
from workflows.argo.jobset import without_jobset_cleanup

WIRING_ERROR = "wiring error"
NOT_EMULATED = "not emulated locally"

# --- which fields are run, which are cluster-only (ignored), everything else is refused -------

SPEC_FIELDS = {"entrypoint", "arguments", "templates", "volumes", "volumeClaimTemplates", "parallelism",
               "activeDeadlineSeconds", "retryStrategy"}
SPEC_IGNORED = {"serviceAccountName", "podGC", "ttlStrategy", "securityContext", "nodeSelector", "tolerations",
                "affinity", "imagePullSecrets", "podMetadata", "priority", "podPriority", "podPriorityClassName",
                "schedulerName", "hostNetwork", "dnsPolicy", "dnsConfig", "archiveLogs", "artifactRepositoryRef",
                "volumeClaimGC", "podDisruptionBudget", "workflowMetadata", "executor", "automountServiceAccountToken",
                "hostAliases", "artifactGC", "metrics"}
TEMPLATE_FIELDS = {"name", "inputs", "outputs", "container", "dag", "volumes", "activeDeadlineSeconds",
                   "retryStrategy", "parallelism", "timeout", "failFast"}
TEMPLATE_IGNORED = {"nodeSelector", "affinity", "tolerations", "schedulerName", "priorityClassName", "priority",
                    "serviceAccountName", "automountServiceAccountToken", "securityContext", "metadata",
                    "hostAliases", "executor", "archiveLocation", "metrics",
                    "podSpecPatch"}  # resource quantities and other pod fields: no local meaning
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "workingDir", "volumeMounts",
                    "resources", "securityContext"}
CONTAINER_IGNORED = {"ports", "livenessProbe", "readinessProbe", "startupProbe", "terminationMessagePath",
                     "terminationMessagePolicy", "stdin", "stdinOnce", "tty"}
TASK_FIELDS = {"name", "template", "arguments", "depends", "dependencies", "when", "withItems", "withParam",
               "withSequence", "continueOn"}
RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
WORKFLOW_VARIABLES = ("workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName",
                      "workflow.creationTimestamp", "workflow.mainEntrypoint")
UNSUPPORTED_TASK_VARIABLES = ("outputs.result", "outputs.artifacts", "startedAt", "finishedAt", "hostNodeName", "ip")
PYTHON_COMMAND = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class NotEmulated(str):
    """A reason that is about the local runner, not about the manifest (see `Problem.kind`)."""


@dataclass(frozen=True)
class Problem:
    kind: str  # WIRING_ERROR | NOT_EMULATED
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Validation:
    workflow: Workflow | None  # None when the manifest is too broken to model
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # valid, but probably not meant (Argo ignores it)

    @property
    def wiring_errors(self) -> list[str]:
        return [p.text for p in self.problems if p.kind == WIRING_ERROR]

    @property
    def not_emulated(self) -> list[str]:
        return [p.text for p in self.problems if p.kind == NOT_EMULATED]


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(self, text: str, kind: str = WIRING_ERROR) -> None:
        if all(p.text != text for p in self.problems):
            self.problems.append(Problem(kind, text))

    def reference(self, where: str, ref: str, reason: str) -> None:
        kind = NOT_EMULATED if isinstance(reason, NotEmulated) else WIRING_ERROR
        self.problem(f"{where}: cannot resolve {{{{{ref}}}}}: {reason}", kind)

    def unsupported(self, feature: str, where: str, hint: str = "") -> None:
        self.problem(f"not supported by the local runner: {feature} in {where}" + (f" ({hint})" if hint else ""),
                     NOT_EMULATED)

    def fields(self, data: Any, where: str, allowed: Collection[str], ignored: Collection[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problem(f"{where}: expected a mapping, got {type(data).__name__}")
            return {}
        for key in data:
            if key not in allowed and key not in ignored:
                self.unsupported(f"'{key}'", where)
        return data


def load_workflow(manifest: dict[str, Any]) -> Workflow:
    """The model of a Workflow (or WorkflowTemplate) manifest; raises ManifestError listing every problem."""
    result = validate(manifest)
    if result.problems or result.workflow is None:
        count = len(result.problems)
        raise ManifestError(f"the workflow cannot run ({count} problem{'s' if count > 1 else ''}):\n  - "
                            + "\n  - ".join(p.text for p in result.problems))
    return result.workflow


def validate(manifest: Any) -> Validation:
    """Every problem of a Workflow or WorkflowTemplate manifest, tagged; and its model when it has one."""
    check = _Checker()
    if not isinstance(manifest, dict):
        check.problem(f"a workflow manifest is a mapping, got {type(manifest).__name__}")
        return Validation(None, check.problems)
    manifest = without_jobset_cleanup(manifest)
    kind = manifest.get("kind", "Workflow")
    if kind not in ("Workflow", "WorkflowTemplate"):
        check.problem(f"not supported by the local runner: kind {kind} (it runs a Workflow or a WorkflowTemplate)",
                      NOT_EMULATED)
        return Validation(None, check.problems)
    metadata = manifest.get("metadata") or {}
    spec = check.fields(manifest.get("spec"), "spec", SPEC_FIELDS, SPEC_IGNORED)
    if not spec:
        if not check.problems:
            check.problem("the manifest has no spec")
        return Validation(None, check.problems, check.warnings)

    parameters = _workflow_parameters(spec.get("arguments") or {}, check)
    volumes = _volumes(spec, check)
    templates: dict[str, Template] = {}
    for raw in spec.get("templates") or []:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not name:
            check.problem("spec.templates: a template without a name")
            continue
        if name in templates:
            check.problem(f"spec.templates: two templates are named '{name}'")
            continue
        templates[name] = _template(raw, check, volumes)

    entrypoint = spec.get("entrypoint")
    if not entrypoint:
        check.problem("spec.entrypoint is missing")
    elif entrypoint not in templates:
        check.problem(f"spec.entrypoint '{entrypoint}' names no template (templates: {', '.join(templates)})")

    workflow_metadata = check.fields(spec.get("workflowMetadata") or {}, "spec.workflowMetadata",
                                     {"labels", "annotations"})
    default_retry = spec.get("retryStrategy")
    if default_retry is not None:
        _retry_strategy(default_retry, "spec.retryStrategy", check)

    secret_envs: set[str] = set()
    for template in templates.values():
        if template.kind == "container":
            for env in template.raw["container"].get("env") or []:
                if isinstance(env, dict) and "secretKeyRef" in (env.get("valueFrom") or {}):
                    secret_envs.add(env.get("name", ""))

    workflow = Workflow(
        name=metadata.get("name") if kind == "Workflow" else None,
        generate_name=metadata.get("generateName") or (f"{metadata['name']}-" if kind == "WorkflowTemplate" and metadata.get("name") else None),
        namespace=metadata.get("namespace") or "default",
        labels={**(metadata.get("labels") or {}), **(workflow_metadata.get("labels") or {})},
        annotations={**(metadata.get("annotations") or {}), **(workflow_metadata.get("annotations") or {})},
        service_account=spec.get("serviceAccountName") or "default",
        entrypoint=entrypoint or "",
        parameters=parameters,
        templates=templates,
        volumes=volumes,
        parallelism=_positive(spec.get("parallelism"), "spec.parallelism", check),
        active_deadline_seconds=_positive(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds", check),
        default_retry=default_retry,
        secret_env_names=secret_envs,
        warnings=check.warnings,
    )
    if not workflow.name and not workflow.generate_name:
        check.problem("metadata: set name or generateName")
    else:
        # the API server's check of the name, or of generateName (cut to 58 characters) plus 5 random ones
        field_name, given = ("metadata.name", workflow.name) if workflow.name else \
            ("metadata.generateName", workflow.generate_name or "")
        made = given if workflow.name else given[:58] + "x0x0x"
        problem = object_name_problem(made)
        if problem:
            check.problem(f"{field_name} {given!r} does not make a valid workflow name ({made!r}): {problem}")

    for template in templates.values():
        if template.kind == "dag":
            _check_dag(workflow, template, check)
        else:
            _check_container_references(workflow, template, check)
    if entrypoint in templates:
        _check_recursion(workflow, entrypoint, [], check)
        entry = templates[entrypoint]
        missing = [p.name for p in entry.inputs if not p.supplied and p.name not in workflow.parameters]
        if missing:
            check.problem(f"entrypoint template '{entrypoint}' needs input parameter(s) {', '.join(missing)}, "
                          "which a workflow cannot pass; give them defaults")

    return Validation(workflow, check.problems, check.warnings)


def _positive(value: Any, where: str, check: _Checker) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        check.problem(f"{where}: '{value}' is not an integer")
        return None
    if number <= 0:
        check.problem(f"{where}: must be positive, got {number}")
        return None
    return number


def _workflow_parameters(arguments: dict[str, Any], check: _Checker) -> dict[str, InputParam]:
    args = check.fields(arguments, "spec.arguments", {"parameters"})
    if "artifacts" in arguments:
        check.unsupported("artifacts", "spec.arguments")
    params: dict[str, InputParam] = {}
    for raw in args.get("parameters") or []:
        where = f"spec.arguments.parameters.{raw.get('name', '?')}"
        check.fields(raw, where, {"name", "value", "default", "enum", "description"}, {"globalName"})
        if "valueFrom" in raw:  # not emulated (fields() said so), but the parameter exists for its references
            params[raw["name"]] = InputParam(raw["name"], value_from=True)
            continue
        value = _str_or_none(raw.get("value", raw.get("default")))
        if value is None:
            check.problem(f"{where}: a workflow parameter needs a value")
        enum = tuple(str(v) for v in raw["enum"]) if raw.get("enum") else None
        if enum and value is not None and value not in enum:
            # Argo's validateArgumentsValues: "value should be present in ... enum list"
            check.problem(f"workflow parameter '{raw['name']}' = {value!r} is not one of {', '.join(enum)} "
                          f"(the enum of {where})")
        params[raw["name"]] = InputParam(raw["name"], value=value, enum=enum)
    return params


def _volumes(spec: dict[str, Any], check: _Checker) -> dict[str, str]:
    volumes: dict[str, str] = {}
    for raw in spec.get("volumes") or []:
        _volume(raw, "spec.volumes", volumes, check)
    for raw in spec.get("volumeClaimTemplates") or []:
        name = (raw.get("metadata") or {}).get("name")
        if not name:
            check.problem("spec.volumeClaimTemplates: a claim template without metadata.name")
            continue
        volumes[name] = "volumeClaimTemplate"
    return volumes


def _volume(raw: dict[str, Any], where: str, volumes: dict[str, str], check: _Checker) -> None:
    name = raw.get("name")
    if not name:
        check.problem(f"{where}: a volume without a name")
        return
    kinds = [key for key in raw if key != "name"]
    supported = [key for key in kinds if key in ("persistentVolumeClaim", "emptyDir")]
    if len(kinds) != 1 or not supported:
        shown = ", ".join(k for k in kinds if k not in ("persistentVolumeClaim", "emptyDir")) or "no source"
        check.unsupported(f"volume source {shown}", f"{where}.{name}",
                          "persistentVolumeClaim, volumeClaimTemplates and emptyDir are mapped to folders")
        volumes[name] = NOT_EMULATED  # known, so that its mounts are not wiring errors; the run is refused anyway
        return
    volumes[name] = supported[0]


def _template(raw: dict[str, Any], check: _Checker, volumes: dict[str, str]) -> Template:
    name = raw["name"]
    where = f"template '{name}'"
    # A JobSet `resource` is emulated (workflows/runner/jobset.py); any other is refused below, by name.
    check.fields(raw, where, TEMPLATE_FIELDS | {"resource"}, TEMPLATE_IGNORED)
    inputs_raw = raw.get("inputs") or {}
    check.fields(inputs_raw, f"{where} inputs", {"parameters"})
    inputs = []
    for param in inputs_raw.get("parameters") or []:
        pwhere = f"{where} input parameter '{param.get('name', '?')}'"
        check.fields(param, pwhere, {"name", "value", "default", "enum", "description"})
        inputs.append(InputParam(param.get("name", ""), value=_str_or_none(param.get("value")),
                                 default=_str_or_none(param.get("default")),
                                 enum=tuple(str(v) for v in param["enum"]) if param.get("enum") else None,
                                 value_from="valueFrom" in param))
    outputs_raw = raw.get("outputs") or {}
    check.fields(outputs_raw, f"{where} outputs", {"parameters"})
    outputs = []
    for param in outputs_raw.get("parameters") or []:
        pwhere = f"{where} output parameter '{param.get('name', '?')}'"
        check.fields(param, pwhere, {"name", "valueFrom", "description"})
        value_from = check.fields(param.get("valueFrom") or {}, f"{pwhere} valueFrom", {"path", "default"})
        if "path" not in value_from:
            check.unsupported("an output parameter without valueFrom.path", pwhere)
            continue
        outputs.append(OutputParam(param["name"], value_from["path"], _str_or_none(value_from.get("default"))))

    if raw.get("retryStrategy") is not None:
        _retry_strategy(raw["retryStrategy"], f"{where} retryStrategy", check)
    _deadlines(raw, where, check)
    local_volumes = dict(volumes)
    for volume in raw.get("volumes") or []:
        _volume(volume, f"{where} volumes", local_volumes, check)

    has = [key for key in ("container", "dag", "resource") if key in raw]
    others = [key for key in ("steps", "script", "suspend", "containerSet", "data", "http", "plugin")
              if key in raw]
    if has == ["resource"] and not others:
        problem = jobset_not_emulated(raw)
        if problem:
            check.unsupported(problem, where)
        return Template(name, "resource" if not problem else "unsupported", raw, inputs, outputs)
    if others:
        # fields() already reported them; nothing more to build
        return Template(name, "unsupported", raw, inputs, outputs)
    if len(has) != 1:
        check.problem(f"{where}: needs exactly one of container or dag")
        return Template(name, "unsupported", raw, inputs, outputs)
    if has[0] == "container":
        return _container_template(name, raw, inputs, outputs, check, local_volumes)
    return _dag_template(name, raw, inputs, outputs, check)


def _retry_strategy(raw: Any, where: str, check: _Checker) -> None:
    data = check.fields(raw, where, {"limit", "retryPolicy", "expression", "backoff"}, {"affinity"})
    policy = data.get("retryPolicy")
    if policy is not None and policy not in RETRY_POLICIES:
        check.problem(f"{where}: retryPolicy '{policy}' is not one of {', '.join(RETRY_POLICIES)}")
    if _static(data.get("limit")) and not _is_int(data["limit"]):
        check.problem(f"{where}: limit {data['limit']!r} is not an integer (Argo reads it with intstr.Int32)")
    if data.get("backoff") is not None:
        backoff = check.fields(data["backoff"], f"{where}.backoff", {"duration", "factor", "maxDuration", "cap"})
        if _static(backoff.get("factor")) and not _is_int(backoff["factor"]):
            check.problem(f"{where}.backoff: factor {backoff['factor']!r} is not an integer "
                          "(Argo reads it with intstr.Int32)")
        for name in ("duration", "cap", "maxDuration"):
            if _static(backoff.get(name)):
                _duration_problem(backoff[name], f"{where}.backoff.{name}", check)


def _deadlines(raw: dict[str, Any], where: str, check: _Checker) -> None:
    """A template's `timeout` and `activeDeadlineSeconds` as Argo's validateTemplate / validateLeaf check them."""
    timeout = raw.get("timeout")
    if _static(timeout):
        if _is_int(timeout):
            check.problem(f"{where}: timeout {timeout!r} has no unit; Argo rejects a whole number "
                          "(\"has invalid duration format in timeout\"): write e.g. '{timeout}s'")
        else:
            _duration_problem(timeout, f"{where} timeout", check)
    deadline = raw.get("activeDeadlineSeconds")
    if _static(deadline) and (not _is_int(deadline) or int(str(deadline)) < 0):
        check.problem(f"{where}: activeDeadlineSeconds {deadline!r} must be a positive integer or an argo variable "
                      "(Argo's validateLeaf)")


def _static(value: Any) -> bool:
    """Set and free of `{{...}}`: its value is known before the workflow runs."""
    return value is not None and "{{" not in str(value)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and re.fullmatch(r"[+-]?\d+", str(value).strip()) is not None


def _duration_problem(value: Any, where: str, check: _Checker) -> None:
    try:
        parse_duration(value, where)
    except ManifestError as error:
        check.problem(str(error))


def _container_template(name: str, raw: dict[str, Any], inputs: list[InputParam], outputs: list[OutputParam],
                        check: _Checker, volumes: dict[str, str]) -> Template:
    where = f"template '{name}'"
    container = check.fields(raw["container"], f"{where} container", CONTAINER_FIELDS, CONTAINER_IGNORED)
    if not container.get("command"):
        check.unsupported("a container without command", where,
                          "the image's ENTRYPOINT is not known locally; give the command explicitly")
    for env in container.get("env") or []:
        ewhere = f"{where} env '{env.get('name', '?')}'"
        check.fields(env, ewhere, {"name", "value", "valueFrom"})
        if "valueFrom" in env:
            source = check.fields(env["valueFrom"] or {}, f"{ewhere} valueFrom", {"secretKeyRef", "resourceFieldRef"})
            if "secretKeyRef" in source:
                check.fields(source["secretKeyRef"], f"{ewhere} secretKeyRef", {"name", "key", "optional"})
    mounts = []
    for mount in container.get("volumeMounts") or []:
        mwhere = f"{where} volumeMount '{mount.get('name', '?')}'"
        check.fields(mount, mwhere, {"name", "mountPath", "subPath"}, {"readOnly", "mountPropagation"})
        volume = mount.get("name")
        if volume not in volumes:
            check.problem(f"{mwhere}: no volume named '{volume}' in spec.volumes, spec.volumeClaimTemplates "
                          f"or the template's volumes (have: {', '.join(volumes) or 'none'})")
            continue
        if not str(mount.get("mountPath", "")).startswith("/"):
            check.problem(f"{mwhere}: mountPath must be absolute, got {mount.get('mountPath')!r}")
            continue
        mounts.append(Mount(volume, mount["mountPath"].rstrip("/") or "/", mount.get("subPath", "")))
    for output in outputs:
        path = output.path
        if "{{" not in path and not any(path == m.mount_path or path.startswith(m.mount_path + "/") for m in mounts):
            check.unsupported(f"output parameter '{output.name}' read from {path}, outside every volume mount",
                              where, "write output files to a mounted volume")
    return Template(name, "container", raw, inputs, outputs, mounts=mounts)


def _dag_template(name: str, raw: dict[str, Any], inputs: list[InputParam], outputs: list[OutputParam],
                  check: _Checker) -> Template:
    where = f"template '{name}'"
    dag = check.fields(raw["dag"], f"{where} dag", {"tasks", "target", "failFast"})
    if outputs:
        check.unsupported("outputs of a dag template", where)
    if raw.get("retryStrategy") is not None:
        check.unsupported("retryStrategy on a dag template", where)
    tasks: dict[str, Task] = {}
    foreign: set[str] = set()
    for traw in dag.get("tasks") or []:
        task = _task(name, traw, check)
        if task is None:
            if isinstance(traw, dict) and traw.get("name") and ("templateRef" in traw or "inline" in traw):
                foreign.add(str(traw["name"]))
            continue
        if task.name in tasks:
            check.problem(f"{where}: two tasks are named '{task.name}'")
            continue
        tasks[task.name] = task
    if not tasks and not foreign:
        check.problem(f"{where}: a dag without tasks")
    fail_fast = dag.get("failFast")
    targets = str(dag["target"]).split() if dag.get("target") else None
    return Template(name, "dag", raw, inputs, outputs, tasks=tasks,
                    parallelism=_positive(raw.get("parallelism"), f"{where} parallelism", check),
                    fail_fast=True if fail_fast is None else bool(fail_fast), targets=targets,
                    stop_on_failed_child=raw.get("failFast") is True, foreign_tasks=foreign)


def _task(dag_name: str, raw: dict[str, Any], check: _Checker) -> Task | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"task '{name}' of dag '{dag_name}'"
    if not name:
        check.problem(f"dag '{dag_name}': a task without a name")
        return None
    if not re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9]*", name):
        check.problem(f"{where}: a task name is letters, digits and '-' (Argo's rule)")
    check.fields(raw, where, TASK_FIELDS)
    if not raw.get("template"):
        if "templateRef" not in raw and "inline" not in raw:
            check.problem(f"{where}: no template")
        return None
    arguments_raw = raw.get("arguments") or {}
    check.fields(arguments_raw, f"{where} arguments", {"parameters"})
    arguments: dict[str, str] = {}
    for param in arguments_raw.get("parameters") or []:
        pwhere = f"{where} argument '{param.get('name', '?')}'"
        check.fields(param, pwhere, {"name", "value", "description"})
        if "value" not in param and "valueFrom" not in param:
            check.problem(f"{pwhere}: no value")
        arguments[param.get("name", "")] = _str_or_none(param.get("value")) or ""
    depends = None
    if raw.get("depends") and raw.get("dependencies"):
        check.problem(f"{where}: use either depends or dependencies, not both")
    if raw.get("depends"):
        try:
            depends = DependsExpr(str(raw["depends"]))
        except ExpressionError as error:
            check.problem(f"{where}: {error}")
    dependencies = [str(d) for d in raw.get("dependencies") or []]
    continue_on = raw.get("continueOn") or {}
    check.fields(continue_on, f"{where} continueOn", {"failed", "error"})
    expansions = [key for key in ("withItems", "withParam", "withSequence") if key in raw]
    if len(expansions) > 1:
        check.problem(f"{where}: use only one of {', '.join(expansions)}")
    sequence = raw.get("withSequence")
    if sequence is not None:
        check.fields(sequence, f"{where} withSequence", {"count", "start", "end", "format"})
        if isinstance(sequence, dict) and sequence.get("count") is not None and sequence.get("end") is not None:
            # Argo's addItemsToScope (workflow/validate/validate.go)
            check.problem(f"{where}: only one of count or end can be defined in withSequence")
    with_items = raw.get("withItems")
    if with_items is not None and not isinstance(with_items, list):
        check.problem(f"{where}: withItems must be a list")
        with_items = None
    if with_items == []:
        with_items = None  # Argo: an empty withItems is no fan-out; the task runs once (ShouldExpand)
    when = raw.get("when")
    return Task(
        name=name, template=raw["template"], raw=raw, arguments=arguments, depends=depends,
        dependencies=dependencies, when=None if when is None or str(when).strip() == "" else str(when),
        with_items=with_items, with_param=None if raw.get("withParam") is None else str(raw["withParam"]),
        with_sequence=sequence, continue_on_failed=bool(continue_on.get("failed")),
        continue_on_error=bool(continue_on.get("error")),
    )


# --- the DAG checks --------------------------------------------------------------------------

def _check_dag(workflow: Workflow, template: Template, check: _Checker) -> None:
    where = f"dag '{template.name}'"
    tasks = template.tasks
    for task in tasks.values():
        if task.depends is not None:
            task.deps = task.depends.tasks
        else:
            task.deps = list(dict.fromkeys(task.dependencies))
        for dep in task.deps:
            if dep not in tasks and dep not in template.foreign_tasks:
                check.problem(f"task '{task.name}' of {where} depends on '{dep}', which is not a task of this dag "
                              f"(tasks: {', '.join(tasks)})")
        task.deps = [dep for dep in task.deps if dep in tasks]
        if task.name in task.deps:
            check.problem(f"task '{task.name}' of {where} depends on itself")
            task.deps.remove(task.name)
        if task.template not in workflow.templates:
            check.problem(f"task '{task.name}' of {where} uses template '{task.template}', which does not exist")
    for task in tasks.values():
        for dep in task.deps:
            tasks[dep].dependents.append(task.name)
        for depends_ref in task.depends.refs if task.depends is not None else []:
            items_based = depends_ref.result in ("AnySucceeded", "AllFailed")
            if items_based and depends_ref.task in tasks and not tasks[depends_ref.task].expands:
                # Argo's validateDAG
                check.problem(f"task '{task.name}' of {where}: dependency '{depends_ref.task}' uses an items-based condition "
                              f"such as .AnySucceeded or .AllFailed but does not contain any items")

    cycle = _find_cycle(tasks)
    if cycle:
        check.problem(f"{where} has a dependency cycle: {' -> '.join(cycle)}")
        return
    for task in ordered(tasks):
        for dep in task.deps:
            task.ancestors |= {dep} | tasks[dep].ancestors
    for task in reversed(ordered(tasks)):
        task.path_length = 1 + max((tasks[d].path_length for d in task.dependents), default=0)
    for target in template.targets or []:
        if "{{" in target:  # a parameterised target: its references are checked, and its value when it is known
            problems = False
            for ref in references(target):
                reason = _target_reference_problem(workflow, template, ref)
                if reason:
                    problems = True
                    check.reference(f"{where} target", ref, reason)
            if not problems:
                _check_parameterised_target(workflow, template, target, check)
        elif target not in tasks:
            check.problem(f"{where}: target '{target}' is not a task of this dag (tasks: {', '.join(tasks)})")

    for task in tasks.values():
        _check_task(workflow, template, task, check)


def _check_parameterised_target(workflow: Workflow, dag: Template, target: str, check: _Checker) -> None:
    """A target made of workflow parameters names the tasks their values give, as the runner substitutes them
    (a dag's inputs are known only when it runs)."""
    values = {f"workflow.parameters.{name}": param.value for name, param in workflow.parameters.items()
              if param.value is not None}
    if not all(ref in values for ref in references(target)):
        return
    names = substitute(target, {ref: str(value) for ref, value in values.items()}, f"dag '{dag.name}' target")
    unknown = [name for name in names.split() if name not in dag.tasks and name not in dag.foreign_tasks]
    if unknown:
        check.problem(f"dag '{dag.name}': target {target!r} gives '{' '.join(unknown)}' with the workflow parameters' "
                      f"values, which is not a task of this dag (tasks: {', '.join(dag.tasks)}); "
                      "`-p` can give another value")


def _target_reference_problem(workflow: Workflow, dag: Template, ref: str) -> str | None:
    if ref.startswith(("inputs.parameters.", "workflow.")):
        return _dag_scope_problem(workflow, dag, ref)
    return "a dag's target can use workflow variables and the dag's inputs"


def _dag_scope_problem(workflow: Workflow, dag: Template, ref: str) -> str | None:
    """A `workflow.*` or `inputs.parameters.*` reference inside a dag template."""
    if ref.startswith("inputs.parameters."):
        return _parameter_problem(f"dag template '{dag.name}'", "input", ref.removeprefix("inputs.parameters."),
                                  dag.input_names())
    return workflow_reference_problem(workflow, ref)


def _parameter_problem(owner: str, direction: str, name: str, declared: list[str]) -> str | None:
    if name in declared:
        return None
    return f"{owner} has no {direction} parameter '{name}' ({direction}s: {', '.join(declared) or 'none'})"


def _find_cycle(tasks: dict[str, Task]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in tasks[name].deps:
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in tasks:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _check_task(workflow: Workflow, dag: Template, task: Task, check: _Checker) -> None:
    where = f"task '{task.name}' of dag '{dag.name}'"
    texts: list[str] = list(task.arguments.values())
    if task.when:
        texts.append(task.when)
    if task.with_param is not None:
        texts.append(task.with_param)
    texts += strings_in(task.with_items or [])
    texts += strings_in(task.with_sequence or {})
    _check_static_expansion(task, where, check)
    for key in ("template", "name"):
        if "{{" in str(task.raw.get(key, "")):
            check.unsupported(f"a {{{{...}}}} reference in the task's {key}", where)
    for text in texts:
        for ref in references(text):
            reason = task_reference_problem(workflow, dag, task, ref)
            if reason:
                check.reference(where, ref, reason)

    target = workflow.templates.get(task.template)
    if target is None or target.kind not in ("container", "dag", "resource"):
        return
    declared = set(target.input_names())
    for param in target.inputs:
        if param.name not in task.arguments and not param.supplied:
            check.problem(f"{where}: input parameter '{param.name}' of template '{target.name}' is not supplied "
                          "(add it to the task's arguments)")
        elif param.enum and param.name in task.arguments and "{{" not in task.arguments[param.name] \
                and task.arguments[param.name] not in param.enum:
            check.problem(f"{where}: argument '{param.name}' = {task.arguments[param.name]!r} is not one of "
                          f"{', '.join(param.enum)}")
    for name in task.arguments:
        if name not in declared:
            check.warnings.append(f"{where} passes parameter '{name}', which template '{target.name}' does not "
                                  "declare as an input (Argo ignores it)")


def _check_static_expansion(task: Task, where: str, check: _Checker) -> None:
    """A `when` or `withSequence` without `{{...}}` that cannot evaluate: on Argo the task is an Error every run."""
    if task.when is not None and "{{" not in task.when:
        try:
            evaluate_when(task.when)
        except ExpressionError as error:
            check.problem(f"{where}: when {task.when!r} cannot be evaluated, so the task is an Error: {error}")
    # (a task whose `when` is false is Skipped instead, expandTask: only a task without one is certain to fail)
    if task.with_sequence is not None and task.when is None and "{{" not in str(task.with_sequence):
        try:
            sequence_items(task.with_sequence, where)
        except ManifestError as error:
            check.problem(str(error))
    if task.with_param is not None and task.when is None and "{{" not in task.with_param:
        try:
            items = json.loads(task.with_param)
        except (json.JSONDecodeError, RecursionError):
            items = None
        if not isinstance(items, list):
            check.problem(f"{where}: withParam {task.with_param!r} is not a JSON list, so the task is an Error "
                          "(expandTask)")


def task_reference_problem(workflow: Workflow, dag: Template, task: Task, ref: str) -> str | None:
    """Why `{{ref}}` cannot resolve in the fields of `task`, or None if it can."""
    if ref.startswith("="):
        return NotEmulated("not supported by the local runner: expression tags {{=...}}")
    if ref == "item" or ref.startswith("item."):
        if not task.expands:
            return f"task '{task.name}' has no withItems, withParam or withSequence, so there is no item"
        return None
    if ref.startswith(("inputs.parameters.", "workflow.")):
        return _dag_scope_problem(workflow, dag, ref)
    if ref.startswith("tasks."):
        parts = ref.split(".")
        other = parts[1] if len(parts) > 1 else ""
        if other in dag.foreign_tasks:
            return None  # its task is reported as not emulated already
        if other not in dag.tasks:
            return f"there is no task '{other}' in dag '{dag.name}' (tasks: {', '.join(dag.tasks)})"
        if other not in task.ancestors:
            return (f"task '{other}' is not a dependency of task '{task.name}' (directly or through other tasks); "
                    f"add it to depends so it has finished when '{task.name}' starts")
        rest = ".".join(parts[2:])
        if rest in ("status", "exitCode", "id") or rest == "outputs.parameters":
            return None
        for unsupported in UNSUPPORTED_TASK_VARIABLES:
            if rest == unsupported or rest.startswith(unsupported + "."):
                return NotEmulated(f"not supported by the local runner: tasks.{other}.{unsupported}")
        if rest.startswith("outputs.parameters."):
            output = rest.removeprefix("outputs.parameters.")
            template = workflow.templates.get(dag.tasks[other].template)
            declared = _declared_outputs(template) if template is not None else []
            if template is not None and template.kind in ("container", "dag") and output not in declared:
                have = ", ".join(declared) or "none"
                return (f"task '{other}' (template '{template.name}') has no output parameter '{output}' "
                        f"(its outputs: {have})")
            return None
        return f"unknown variable; tasks.{other} has status, exitCode, id and outputs.parameters.<name>"
    if ref.startswith("steps."):
        return "steps.* references belong to steps templates; in a dag use tasks.<name>"
    return "unknown variable"


def _declared_outputs(template: Template) -> list[str]:
    """Every output parameter the template declares, those the runner does not emulate (a dag's outputs,
    `valueFrom.expression`, ...) included: a reference to one is no wiring error."""
    raw = ((template.raw.get("outputs") or {}).get("parameters") or []) if isinstance(template.raw, dict) else []
    return [str(param.get("name")) for param in raw if isinstance(param, dict)]


def workflow_reference_problem(workflow: Workflow, ref: str) -> str | None:
    if ref in WORKFLOW_VARIABLES:
        return None
    if ref.startswith("workflow.parameters."):
        name = ref.removeprefix("workflow.parameters.")
        if name not in workflow.parameters:
            return f"the workflow has no parameter '{name}' (parameters: {', '.join(workflow.parameters) or 'none'})"
        return None
    if ref.startswith("workflow.labels.") or ref.startswith("workflow.annotations."):
        return None
    if ref in ("workflow.status", "workflow.failures", "workflow.duration") or ref.startswith("workflow.outputs."):
        return NotEmulated(f"not supported by the local runner: {{{{{ref}}}}} (exit-handler and global-output variables)")
    return "unknown workflow variable"


def run_fields(template_raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of a template that are substituted and run: not its name and inputs, nor the cluster-only
    fields that are ignored (a `metrics` block may use `{{status}}`, which exists only on the cluster)."""
    return {key: value for key, value in template_raw.items()
            if key not in ("name", "inputs") and key not in TEMPLATE_IGNORED}


def _check_container_references(workflow: Workflow, template: Template, check: _Checker) -> None:
    if template.kind != "container":
        return
    where = f"template '{template.name}'"
    for text in strings_in(run_fields(template.raw)):
        for ref in references(text):
            reason = template_reference_problem(workflow, template, ref)
            if reason:
                check.reference(where, ref, reason)
    # Argo's controller emits metrics once the node ends (ignored locally), so they also see the
    # node's own outputs and status; a typo there is still a wiring error.
    for text in strings_in(template.raw.get("metrics") or {}):
        for ref in references(text):
            reason = metric_reference_problem(workflow, template, ref)
            if reason:
                check.reference(f"{where} metrics", ref, reason)
    for param in template.inputs:
        for given in (param.value, param.default):
            if given and "{{" in given:
                for ref in references(given):
                    if ref.startswith("workflow.") and not workflow_reference_problem(workflow, ref):
                        continue
                    check.problem(f"{where}: input parameter '{param.name}' cannot resolve {{{{{ref}}}}}")


METRIC_VARIABLES = ("status", "duration", "exitCode")


def metric_reference_problem(workflow: Workflow, template: Template, ref: str) -> str | None:
    """Why `{{ref}}` cannot resolve in a template's metrics: they see what the template sees, and
    also its own output parameters and how the node ended."""
    if ref.startswith("outputs.parameters."):
        return _parameter_problem(f"template '{template.name}'", "output", ref.removeprefix("outputs.parameters."),
                                  template.output_names())
    if ref in METRIC_VARIABLES or ref.startswith("resourcesDuration."):
        return None
    return template_reference_problem(workflow, template, ref)


def template_reference_problem(workflow: Workflow, template: Template, ref: str) -> str | None:
    if ref.startswith("="):
        return NotEmulated("not supported by the local runner: expression tags {{=...}}")
    if ref.startswith("inputs.parameters."):
        return _parameter_problem(f"template '{template.name}'", "input", ref.removeprefix("inputs.parameters."),
                                  template.input_names())
    if ref.startswith("workflow."):
        return workflow_reference_problem(workflow, ref)
    if ref in ("pod.name", "retries", "node.name"):
        return None
    if ref == "item" or ref.startswith("item."):
        return "{{item}} belongs in the task's arguments, not in the template; pass it as an input parameter"
    if ref.startswith("tasks.") or ref.startswith("steps."):
        return "a container template cannot see other tasks; pass the value as an input parameter"
    if ref.startswith("inputs.artifacts.") or ref.startswith("outputs."):
        return NotEmulated(f"not supported by the local runner: {{{{{ref}}}}}")
    return "unknown variable"


def _check_recursion(workflow: Workflow, name: str, stack: list[str], check: _Checker) -> None:
    if name in stack:
        check.unsupported(f"recursion ({' -> '.join(stack + [name])})", f"template '{name}'")
        return
    template = workflow.templates.get(name)
    if template is None or template.kind != "dag":
        return
    for task in template.tasks.values():
        _check_recursion(workflow, task.template, stack + [name], check)


def uses_python(command: Iterable[str]) -> bool:
    first = next(iter(command), "")
    return bool(PYTHON_COMMAND.match(first))
