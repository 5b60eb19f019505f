"""The manifest model: an Argo Workflow as the validator reads it and the local runner runs it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflows.argo.expr import DependsExpr


@dataclass(frozen=True)
class InputParam:
    name: str
    value: str | None = None
    default: str | None = None
    enum: tuple[str, ...] | None = None
    value_from: bool = False  # its value comes from `valueFrom` (a ConfigMap, ...): supplied, but not emulated

    @property
    def supplied(self) -> bool:
        """Has a value without a caller passing one."""
        return self.value is not None or self.default is not None or self.value_from


@dataclass(frozen=True)
class OutputParam:
    name: str
    path: str
    default: str | None = None


@dataclass(frozen=True)
class Mount:
    volume: str
    mount_path: str
    sub_path: str = ""


@dataclass
class Template:
    name: str
    kind: str  # "container" | "dag" | "resource" (a JobSet, workflows/runner/jobset.py)
    raw: dict[str, Any]
    inputs: list[InputParam] = field(default_factory=list)
    outputs: list[OutputParam] = field(default_factory=list)
    # container
    mounts: list[Mount] = field(default_factory=list)
    # dag
    tasks: dict[str, Task] = field(default_factory=dict)
    parallelism: int | None = None
    fail_fast: bool = True  # dag.failFast: stop once a target's branch failed
    stop_on_failed_child: bool = False  # the template's own `failFast`: stop once any child failed
    targets: list[str] | None = None
    # dag tasks that run a template the local runner does not hold (`inline`, `templateRef`; not emulated): known by
    # name, so that the tasks depending on them are not reported as wiring errors
    foreign_tasks: set[str] = field(default_factory=set)

    @property
    def paced(self) -> bool:
        """A failure can stop this DAG from starting tasks, so the local runner starts its tasks in steps: the
        next ones only once all it began have ended (docs/local-runner.md, "failFast"), which makes what
        starts after a failure independent of which process ends first."""
        return self.kind == "dag" and (self.fail_fast or self.stop_on_failed_child)

    def input_names(self) -> list[str]:
        return [param.name for param in self.inputs]

    def output_names(self) -> list[str]:
        return [param.name for param in self.outputs]


@dataclass
class Task:
    name: str
    template: str
    raw: dict[str, Any]
    arguments: dict[str, str]
    depends: DependsExpr | None
    dependencies: list[str]
    when: str | None
    with_items: list[Any] | None
    with_param: str | None
    with_sequence: dict[str, Any] | None
    continue_on_failed: bool = False
    continue_on_error: bool = False
    # computed
    deps: list[str] = field(default_factory=list)
    ancestors: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    path_length: int = 1  # tasks on the longest path from here to a leaf, this one included

    @property
    def expands(self) -> bool:
        return self.with_items is not None or self.with_param is not None or self.with_sequence is not None

    def continues_on(self, phase: str) -> bool:
        return phase in self.continue_on

    @property
    def continue_on(self) -> tuple[str, ...]:
        """The unsuccessful phases `continueOn` accepts."""
        return (("Failed",) if self.continue_on_failed else ()) + (("Error",) if self.continue_on_error else ())


@dataclass
class Workflow:
    name: str | None
    generate_name: str | None
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    service_account: str
    entrypoint: str
    parameters: dict[str, InputParam]
    templates: dict[str, Template]
    volumes: dict[str, str]  # name -> "persistentVolumeClaim" | "volumeClaimTemplate" | "emptyDir"
    parallelism: int | None
    active_deadline_seconds: int | None
    default_retry: dict[str, Any] | None
    secret_env_names: set[str]
    warnings: list[str]
