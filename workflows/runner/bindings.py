"""What a task or pod sees: the values of `{{...}}` in its scope, its fan-out items, its inputs, and its
template with everything substituted. Reads the run's nodes; changes none of them."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from workflows.argo.dag import sequence_items
from workflows.argo.errors import ArgoError, ManifestError
from workflows.argo.expr import evaluate_when
from workflows.argo.model import Template, Workflow
from workflows.argo.phase import Phase
from workflows.argo.subst import pure_reference, substitute, substitute_deep
from workflows.argo.validate import run_fields
from workflows.runner.nodes import DagNode, PodNode, TaskNode, log_name

SKIPPED, OMITTED, SUCCEEDED = Phase.SKIPPED, Phase.OMITTED, Phase.SUCCEEDED


class Bindings:
    def __init__(self, workflow: Workflow, scope: dict[str, str], run_name: str) -> None:
        self.workflow = workflow
        self.scope = scope  # the workflow's variables: workflow.name, workflow.parameters.X, ...
        self.run_name = run_name

    def dag_scope(self, dag: DagNode) -> dict[str, str]:
        """The workflow's variables and the DAG invocation's inputs (what `dag.target` may use)."""
        return {**self.scope, **{f"inputs.parameters.{k}": v for k, v in dag.inputs.items()}}

    def task_scope(self, dag: DagNode, task: TaskNode) -> dict[str, str]:
        """What a task's fields see: the DAG's scope and its ancestors' status, exit codes and outputs."""
        scope = self.dag_scope(dag)
        for name in task.spec.ancestors:
            other = dag.tasks[name]
            prefix = f"tasks.{name}"
            scope[f"{prefix}.status"] = other.phase
            scope[f"{prefix}.id"] = other.key or name
            if other.spec.expands:
                maps = [child.outputs for child in other.children if isinstance(child, PodNode) and child.outputs]
                scope[f"{prefix}.outputs.parameters"] = json.dumps(maps, separators=(",", ":"))
                for output in other.template.output_names():
                    values = [m[output] for m in maps if output in m]
                    scope[f"{prefix}.outputs.parameters.{output}"] = json.dumps(values, separators=(",", ":"))
            elif other.children and isinstance(other.children[0], PodNode):
                pod = other.children[0]
                if pod.exit_code is not None:
                    scope[f"{prefix}.exitCode"] = str(pod.exit_code)
                for output, value in pod.outputs.items():
                    scope[f"{prefix}.outputs.parameters.{output}"] = value
        # a producer's default is a value; an absent optional is none (see `explain` and `arguments`)
        scope.update({key: value for key, (value, producer) in self.outputs_never_produced(dag, task).items()
                      if producer is None})
        return scope

    def outputs_never_produced(self, dag: DagNode, task: TaskNode) -> dict[str, tuple[str, str | None]]:
        """The outputs of the Skipped or Omitted ancestors of `task`, as Argo v4.1 resolves them
        (docs/enhanced-depends-logic.md, "Output references from Skipped or Omitted tasks";
        workflow/controller/scope.go addSkippedNodeOutputsToScope): reference -> (value, producer), where
        producer is None when the producer declares a `valueFrom.default` (the value), else the producer's
        name: an absent optional, unsupplied as a whole argument (the input's default applies) and an error
        anywhere else (util/template/simple_template.go: "output is an absent optional")."""
        found: dict[str, tuple[str, str | None]] = {}
        for name in task.spec.ancestors:
            other = dag.tasks[name]
            if other.phase not in (SKIPPED, OMITTED) or other.spec.expands:
                continue
            for output in other.template.outputs:
                key = f"tasks.{name}.outputs.parameters.{output.name}"
                found[key] = (output.default, None) if output.default is not None else ("", name)
        return found

    def explain(self, dag: DagNode, task: TaskNode) -> Callable[[str], str | None]:
        def explain(ref: str) -> str | None:
            if ref.startswith("tasks."):
                parts = ref.split(".")
                other = dag.tasks.get(parts[1]) if len(parts) > 1 else None
                if other is None:
                    return f"there is no task '{parts[1] if len(parts) > 1 else ''}' in this dag"
                if other.phase in (SKIPPED, OMITTED) and ".outputs.parameters." in ref:
                    # Argo v4.1's own words (util/template/simple_template.go)
                    return (f"output is an absent optional (skipped/omitted node with no default): task "
                            f"'{other.name}' was {other.phase.lower()} and its output declares no valueFrom.default")
                if other.phase != SUCCEEDED:
                    return f"task '{other.name}' ended {other.phase}{' (' + other.message + ')' if other.message else ''}, so it has no outputs"
                if ref.endswith(".exitCode"):
                    return f"task '{other.name}' has no single exit code"
                return f"task '{other.name}' did not produce it"
            if ref == "item" or ref.startswith("item."):
                return "the item has no such field"
            return None
        return explain

    def expand(self, task: TaskNode, scope: dict[str, str], where: str) -> list[Any] | None:
        spec = task.spec
        explain = self.explain(task.dag, task)
        if spec.with_items is not None:
            return [substitute_deep(item, scope, f"{where} withItems", explain) for item in spec.with_items]
        if spec.with_param is not None:
            text = substitute(spec.with_param, scope, f"{where} withParam", explain)
            try:
                items = json.loads(text)
            except (json.JSONDecodeError, RecursionError):  # nested too deep to parse
                items = None
            if not isinstance(items, list):
                if self.when_is_false(task, scope, where):
                    return []
                shown = text.strip()
                shown = shown if len(shown) <= 200 else shown[:200] + "..."
                raise ManifestError(f"{where}: withParam value could not be parsed as a JSON list: {shown}")
            return items
        if spec.with_sequence is not None:
            sequence = substitute_deep(spec.with_sequence, scope, f"{where} withSequence", explain)
            try:
                return sequence_items(sequence, where)
            except ManifestError:
                if self.when_is_false(task, scope, where):
                    return []
                raise
        return None

    @staticmethod
    def when_is_false(task: TaskNode, scope: Mapping[str, str], where: str) -> bool:
        """Argo's expandTask (workflow/controller/dag.go): a withParam or withSequence that cannot be expanded is
        no error, only no items ("Skipped, empty params"), when the task's `when` — before any `{{item}}` — is
        false."""
        if task.spec.when is None:
            return False
        try:
            return not evaluate_when(substitute(task.spec.when, scope, f"{where} when"))
        except ArgoError:
            return False  # cannot be decided without the item: Argo reports the expansion's error

    def arguments(self, dag: DagNode, task: TaskNode, scope: Mapping[str, str], where: str) -> dict[str, str]:
        """The task's arguments, substituted; one that is exactly a reference to an absent optional (the
        output of a Skipped or Omitted task without a default) is left out, so the input's default applies."""
        absent = {key: producer for key, (_, producer) in self.outputs_never_produced(dag, task).items()
                  if producer is not None}
        explain = self.explain(dag, task)
        arguments = {}
        for name, value in task.spec.arguments.items():
            ref = pure_reference(value)
            if ref in absent:
                self.check_absent_has_default(task.template, name, ref, absent[ref], where)
                continue
            arguments[name] = substitute(value, scope, f"{where} argument '{name}'", explain)
        return arguments

    def inputs(self, template: Template, arguments: dict[str, str], where: str,
                scope: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for param in template.inputs:
            value = param.value if param.value is not None else param.default
            if value is not None and "{{" in value:
                value = substitute(value, scope, f"{where} input parameter '{param.name}'")
            if param.name in arguments:
                value = arguments[param.name]
            if value is None:
                raise ManifestError(f"{where}: inputs.parameters.{param.name} was not supplied")
            if param.enum and value not in param.enum:
                raise ManifestError(f"{where}: input parameter '{param.name}' = {value!r} is not one of "
                                    f"{', '.join(param.enum)}")
            values[param.name] = value
        return values

    @staticmethod
    def check_absent_has_default(template: Template, name: str, ref: str, producer: str, where: str) -> None:
        param = next((p for p in template.inputs if p.name == name), None)
        if param is not None and param.value is None and param.default is None:
            raise ManifestError(f"{where}: inputs.parameters.{name}: argument {{{{{ref}}}}} references an absent "
                                f"optional: task '{producer}' was skipped or omitted and its output declares no "
                                "valueFrom.default, and the input has no default")

    def pod_scope(self, pod: PodNode, retries: int) -> dict[str, str]:
        scope = dict(self.scope)
        scope.update({f"inputs.parameters.{k}": v for k, v in pod.inputs.items()})
        scope["pod.name"] = f"{self.run_name}-{log_name(pod.key)}"
        scope["node.name"] = f"{self.run_name}.{pod.display}"
        scope["retries"] = str(retries)
        return scope

    def resolved_template(self, pod: PodNode, retries: int) -> dict[str, Any]:
        raw = run_fields(pod.template.raw)
        if "retryStrategy" not in raw and self.workflow.default_retry is not None:
            raw["retryStrategy"] = self.workflow.default_retry
        return substitute_deep(raw, self.pod_scope(pod, retries), f"template '{pod.template.name}' of task '{pod.display}'")
