"""What the runner tells whoever watches a run (the console, a test): one method per event.

Subclass `RunListener` and override what you need; every method defaults to doing nothing. The
runner calls them from its own thread, in order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from workflows.runner.nodes import DagNode, PodNode, RunResult, TaskNode
from workflows.runner.process import AttemptResult


class RunView(Protocol):
    """What a listener may read about the run as a whole (the engine provides it)."""

    name: str
    workdir: Path
    started: float
    limit: int | None  # most pods at once; None: unlimited
    warnings: list[str]  # about the manifest and the workdir, to show before anything runs
    all_tasks: list[TaskNode]  # every task of every DAG invocation so far, in creation order

    @property
    def running_count(self) -> int: ...


class RunListener:
    def workflow_started(self, run: RunView) -> None:
        """Before the first task starts; `run` has the run's name, workdir, limits and warnings."""

    def task_started(self, task: TaskNode, items: int) -> None:
        """A task's dependencies are done and its pods (or nested DAGs) are created; `items` > 0 for a fan-out."""

    def pod_started(self, pod: PodNode, attempt: int, argv: list[str]) -> None:
        """An attempt (1-based) of a pod started as a local process."""

    def pod_retrying(self, pod: PodNode, delay_s: float, result: AttemptResult) -> None:
        """An attempt failed and the retryStrategy retries it in `delay_s` seconds."""

    def pod_ended(self, pod: PodNode) -> None:
        """A pod reached its final phase (reused, skipped and errored-before-start pods included)."""

    def dag_started(self, dag: DagNode) -> None:
        """A nested DAG invocation started."""

    def dag_ended(self, dag: DagNode) -> None:
        """A nested DAG invocation (or a skipped/errored one) reached its final phase."""

    def task_ended(self, task: TaskNode) -> None:
        """A task reached its final phase."""

    def fail_fast(self, dag: DagNode, task: TaskNode | None) -> None:
        """A failure stopped new tasks in `dag` (failFast)."""

    def workflow_ended(self, run: RunView, result: RunResult) -> None:
        """After the last task and after timeline.json is written."""
