"""DAG checks Hera does not make: the wiring of templates, tasks, parameters and volumes.

Each check reads the rendered manifest (a dict), so it checks exactly what Argo and the
local runner will interpret. `lint_manifest` returns problems as sentences naming the
template, the task and the reference.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

REFERENCE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
DEPENDS_TOKEN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?")
DEPENDS_OPERATORS = {"&&", "||", "!", "(", ")"}
GLOBAL_VARIABLES = {"workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName",
                    "workflow.creationTimestamp", "workflow.duration", "workflow.status", "workflow.mainEntrypoint"}


def _references(value: Any) -> Iterator[str]:
    """Every `{{...}}` expression anywhere inside a value."""
    if isinstance(value, str):
        yield from REFERENCE.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def depends_on(task: dict[str, Any]) -> set[str]:
    """Task names a task waits for, from `depends` (an expression) or `dependencies` (a list)."""
    names = set(task.get("dependencies") or [])
    expression = task.get("depends") or ""
    for token in DEPENDS_TOKEN.findall(expression):
        names.add(token.split(".")[0])
    return names


def _declared_inputs(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in (template.get("inputs") or {}).get("parameters") or []}


def _declared_outputs(template: dict[str, Any]) -> set[str]:
    return {p["name"] for p in (template.get("outputs") or {}).get("parameters") or []}


def _ancestors(tasks: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    ancestors: dict[str, set[str]] = {}

    def visit(name: str, trail: tuple[str, ...]) -> set[str]:
        if name in ancestors:
            return ancestors[name]
        result: set[str] = set()
        for parent in depends_on(tasks[name]):
            if parent in tasks and parent not in trail:
                result |= {parent} | visit(parent, trail + (name,))
        ancestors[name] = result
        return result

    for name in tasks:
        visit(name, ())
    return ancestors


def _cycles(tasks: dict[str, dict[str, Any]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "visiting"
        for parent in sorted(depends_on(tasks[name])):
            if parent not in tasks:
                continue
            if state.get(parent) == "visiting":
                cycles.append(path[path.index(parent):] + [parent] if parent in path else [name, parent])
            elif parent not in state:
                visit(parent, path + [parent])
        state[name] = "done"

    for name in sorted(tasks):
        if name not in state:
            visit(name, [name])
    return cycles


def _workflow_parameters(spec: dict[str, Any]) -> set[str]:
    return {p["name"] for p in (spec.get("arguments") or {}).get("parameters") or []}


def _volume_names(spec: dict[str, Any], template: dict[str, Any]) -> set[str]:
    names = {v["name"] for v in spec.get("volumes") or []}
    names |= {v["metadata"]["name"] for v in spec.get("volumeClaimTemplates") or []}
    names |= {v["name"] for v in template.get("volumes") or []}
    return names


def _check_template_references(spec: dict[str, Any], template: dict[str, Any]) -> list[str]:
    problems = []
    name = template["name"]
    inputs = _declared_inputs(template)
    body = {key: value for key, value in template.items() if key not in ("dag", "inputs", "name")}
    for ref in _references(body):
        if ref.startswith("inputs.parameters."):
            param = ref.removeprefix("inputs.parameters.")
            if param not in inputs:
                problems.append(f"template '{name}': '{{{{{ref}}}}}' names an input it does not declare "
                                f"(declared: {', '.join(sorted(inputs)) or 'none'})")
        elif ref.startswith("workflow.parameters."):
            param = ref.removeprefix("workflow.parameters.")
            if param not in _workflow_parameters(spec):
                problems.append(f"template '{name}': '{{{{{ref}}}}}' is not a workflow parameter")
    container = template.get("container") or {}
    volumes = _volume_names(spec, template)
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            problems.append(f"template '{name}': volume mount '{mount['name']}' at {mount.get('mountPath')} "
                            f"has no volume (volumes: {', '.join(sorted(volumes)) or 'none'})")
    return problems


def _check_task(spec: dict[str, Any], dag_name: str, task: dict[str, Any], tasks: dict[str, dict[str, Any]],
                templates: dict[str, dict[str, Any]], ancestors: set[str]) -> list[str]:
    where = f"task '{dag_name}.{task['name']}'"
    problems = []
    for parent in sorted(depends_on(task) - tasks.keys()):
        problems.append(f"{where} depends on '{parent}', which is not a task of DAG '{dag_name}'")
    if "templateRef" in task or "inline" in task:
        return problems + [f"{where}: templateRef/inline templates are not used by tunebench and not checked"]
    template = templates.get(task.get("template", ""))
    if template is None:
        return problems + [f"{where} uses template '{task.get('template')}', which does not exist "
                           f"(templates: {', '.join(sorted(templates))})"]
    declared = _declared_inputs(template)
    supplied = {p["name"] for p in (task.get("arguments") or {}).get("parameters") or []}
    for param in sorted(supplied - declared.keys()):
        problems.append(f"{where} passes parameter '{param}', which template '{template['name']}' does not declare")
    for param in sorted(declared.keys() - supplied):
        if "value" not in declared[param] and "default" not in declared[param]:
            problems.append(f"{where} does not supply required input '{param}' of template '{template['name']}'")
    fans_out = "withParam" in task or "withItems" in task
    for ref in _references({k: v for k, v in task.items() if k != "name"}):
        problems += _check_task_reference(spec, where, ref, tasks, templates, ancestors, fans_out)
    return problems


def _check_task_reference(spec: dict[str, Any], where: str, ref: str, tasks: dict[str, dict[str, Any]],
                          templates: dict[str, dict[str, Any]], ancestors: set[str], fans_out: bool) -> list[str]:
    if ref == "item" or ref.startswith("item."):
        return [] if fans_out else [f"{where} uses '{{{{{ref}}}}}' without withParam or withItems"]
    if ref.startswith("workflow.parameters."):
        param = ref.removeprefix("workflow.parameters.")
        return [] if param in _workflow_parameters(spec) else [f"{where}: '{{{{{ref}}}}}' is not a workflow parameter"]
    if ref.startswith("tasks."):
        parts = ref.split(".")
        other = parts[1]
        if other not in tasks:
            return [f"{where}: '{{{{{ref}}}}}' names task '{other}', which does not exist"]
        if other not in ancestors:
            return [f"{where}: '{{{{{ref}}}}}' reads task '{other}', which is not an ancestor "
                    f"(add it to depends, or the value may not exist yet)"]
        if len(parts) == 5 and parts[2:4] == ["outputs", "parameters"]:
            other_template = templates.get(tasks[other].get("template", ""), {})
            if parts[4] not in _declared_outputs(other_template):
                return [f"{where}: '{{{{{ref}}}}}' reads output '{parts[4]}', which template "
                        f"'{other_template.get('name')}' does not declare"]
        return []
    if ref in GLOBAL_VARIABLES or ref.startswith(("=", "inputs.")):
        return []
    return [f"{where}: unknown reference '{{{{{ref}}}}}'"]


def lint_manifest(manifest: dict[str, Any], known_templates: set[str] | None = None) -> list[str]:
    """DAG wiring problems of one Argo manifest; `known_templates` are WorkflowTemplate names rendered alongside."""
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind == "CronWorkflow":
        ref = (spec.get("workflowSpec") or {}).get("workflowTemplateRef") or {}
        if ref and known_templates is not None and ref.get("name") not in known_templates:
            return [f"CronWorkflow: workflowTemplateRef '{ref.get('name')}' is not among the rendered templates "
                    f"({', '.join(sorted(known_templates))})"]
        spec = spec.get("workflowSpec") or {}
    if not spec.get("templates"):
        return []
    problems: list[str] = []
    templates: dict[str, dict[str, Any]] = {}
    for template in spec["templates"]:
        if template["name"] in templates:
            problems.append(f"template '{template['name']}' is defined twice")
        templates[template["name"]] = template
    if spec.get("entrypoint") not in templates:
        problems.append(f"entrypoint '{spec.get('entrypoint')}' is not a template")
    for template in templates.values():
        problems += _check_template_references(spec, template)
        if "dag" not in template:
            continue
        tasks: dict[str, dict[str, Any]] = {}
        for task in template["dag"]["tasks"]:
            if task["name"] in tasks:
                problems.append(f"DAG '{template['name']}' has two tasks named '{task['name']}'")
            tasks[task["name"]] = task
        for cycle in _cycles(tasks):
            problems.append(f"DAG '{template['name']}' has a dependency cycle: {' -> '.join(cycle)}")
        ancestors = _ancestors(tasks)
        for task in tasks.values():
            problems += _check_task(spec, template["name"], task, tasks, templates, ancestors[task["name"]])
    return problems
