"""The runner's picture of a running workflow: DAG invocations, their tasks, and the pods (attempts) they create."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows.argo.phase import FAILED_OR_ERROR, FULFILLED, Phase
from workflows.argo.subst import as_param_string
from workflows.argo.validate import Task, Template
from workflows.runner.process import AttemptRunner, volume_dir

PENDING, RUNNING, SUCCEEDED = Phase.PENDING, Phase.RUNNING, Phase.SUCCEEDED


def log_name(key: str) -> str:
    """A node key as a file name (logs, scratch folders) and in pod names."""
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in key)
    return safe or "node"


@dataclass
class Attempt:
    number: int
    started: float
    finished: float | None = None
    status: str | None = None
    exit_code: int | None = None
    message: str = ""


class Node:
    """Common fields of a pod (container invocation) and a DAG invocation."""

    kind = "node"

    def __init__(self, key: str, display: str, template: Template, task: TaskNode | None, index: int | None,
                 item: Any) -> None:
        self.key = key
        self.display = display
        self.template = template
        self.task = task
        self.index = index
        self.item = item
        self.phase = PENDING
        self.message = ""
        self.started: float | None = None
        self.finished: float | None = None
        self.inputs: dict[str, str] = {}
        self.label = display  # short, for the console

    @property
    def fulfilled(self) -> bool:
        return self.phase in FULFILLED


class PodNode(Node):
    kind = "pod"

    def __init__(self, *args: Any, dag: DagNode, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dag = dag
        self.attempts: list[Attempt] = []
        self.outputs: dict[str, str] = {}
        self.reused = False
        self.fingerprint = ""
        self.retry_at: float | None = None
        self.running: AttemptRunner | None = None
        self.nominal_elapsed = 0.0  # attempts plus unscaled backoff, for backoff.maxDuration
        self.sequence = 0
        self.log_path: Path | None = None
        self.resolved: dict[str, Any] | None = None
        self.written: list[str] = []  # files it wrote (written.py), relative to the workdir
        self.rerun_reason = ""  # why an earlier success was not reused

    @property
    def exit_code(self) -> int | None:
        return self.attempts[-1].exit_code if self.attempts else None


class DagNode(Node):
    kind = "dag"

    def __init__(self, *args: Any, parent: DagNode | None, fresh_upstream: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parent = parent
        self.fresh_upstream = fresh_upstream
        self.tasks: dict[str, TaskNode] = {}
        self.order: list[TaskNode] = []
        self.stopped_by: str | None = None  # fail-fast: the failure that stopped new tasks
        self.stopped_task: TaskNode | None = None
        self.running_pods = 0  # its own pods running now (not those of the DAGs it invokes)
        self.running_dags = 0  # nested DAG invocations of its tasks in progress
        self.waiting_dags: list[DagNode] = []  # nested DAG invocations held back by its parallelism
        self.needed: set[str] | None = None
        self.targets: list[str] | None = None  # dag.target, substituted
        self.prefix = ""

    def step_running(self) -> bool:
        """A DAG a failure can stop (Template.paced) starts its next tasks only once every task it began has
        ended: true while some have not."""
        return self.template.paced and any(task.phase == RUNNING for task in self.order)

    def has_room(self) -> bool:
        """Argo's DAG `parallelism` counts the DAG's active children: its own pods and the nested DAG
        invocations of its tasks, each of those counting once whatever runs inside it."""
        limit = self.template.parallelism
        return limit is None or self.running_pods + self.running_dags < limit


class TaskNode:
    def __init__(self, dag: DagNode, spec: Task, template: Template) -> None:
        self.dag = dag
        self.spec = spec
        self.template = template
        self.key = dag.prefix + spec.name
        self.phase = PENDING
        self.message = ""
        self.children: list[PodNode | DagNode] = []
        self.ready: float | None = None  # when its dependencies were done
        self.started: float | None = None  # when its first pod started
        self.finished: float | None = None
        self.ran_now = False  # a pod of this task (or below it) ran in this invocation of `tunebench run`

    @property
    def fulfilled(self) -> bool:
        return self.phase in FULFILLED

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RunResult:
    workflow_name: str
    phase: Phase
    message: str
    workdir: Path
    started: float
    finished: float
    root: DagNode
    interrupted: bool = False
    pods: list[PodNode] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.phase == SUCCEEDED

    def volume(self, name: str) -> Path:
        return volume_dir(self.workdir, name)


def short_labels(items: list[Any]) -> list[str]:
    """What tells a fan-out's children apart, for the console: the values of the fields that vary
    (`math`, `physics`), or the item itself when it is short; at most 40 characters."""
    def clip(text: str) -> str:
        return text if len(text) <= 40 else text[:37] + "..."

    if items and all(isinstance(item, dict) for item in items):
        keys = sorted({key for item in items for key in item})
        varying = [k for k in keys if len({as_param_string(item.get(k, "")) for item in items}) > 1]
        if not varying:
            values = [as_param_string(v) for v in items[0].values()]
            return [clip(min(values, key=len))] * len(items) if values else [""] * len(items)
        return [clip(",".join(as_param_string(item.get(k, "")) for k in varying)) for item in items]
    return [clip(as_param_string(item)) for item in items]


def describe_failure(task: TaskNode) -> str:
    """`task 'train' failed: exit code 1`, naming the failed child of a fan-out or nested DAG."""
    text = f"task '{task.key}' {task.phase.lower() if task.phase in FAILED_OR_ERROR else 'failed'}"
    failed = [child for child in task.children if child.phase in FAILED_OR_ERROR]
    if task.spec.expands and failed:
        child = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"{text}: {child.label}: {child.message}{more}"
    if failed and isinstance(failed[0], DagNode):
        return f"{text}: {failed[0].message}"
    message = failed[0].message if failed else task.message
    return f"{text}: {message}" if message else text


def mark_started(pod: PodNode, now: float) -> None:
    """The pod's task, and the tasks of the DAGs it runs in, started no later than `now`."""
    task: TaskNode | None = pod.task
    while task is not None:
        task.started = task.started or now
        task = task.dag.task


def mark_ran(pod: PodNode) -> None:
    """A pod of this task (and of the tasks invoking its DAG) ran in this invocation of the runner."""
    task: TaskNode | None = pod.task
    while task is not None:
        task.ran_now = True
        task = task.dag.task
