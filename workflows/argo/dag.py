"""Argo's DAG rules over the manifest model, free of any runner state: task order, `withSequence`
items, and a DAG's phase from its target tasks (assessDAGPhase)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.argo.errors import ManifestError
from workflows.argo.model import Task, Template
from workflows.argo.phase import COMPLETED, FAILED_OR_ERROR, Phase


def ordered(tasks: Mapping[str, Task]) -> list[Task]:
    """Tasks in dependency order, keeping the manifest's order among independent ones."""
    order: list[Task] = []
    done: set[str] = set()

    def visit(task: Task) -> None:
        if task.name in done:
            return
        done.add(task.name)
        for dep in task.deps:
            visit(tasks[dep])
        order.append(task)

    for task in tasks.values():
        visit(task)
    return order


def sequence_items(spec: Mapping[str, Any], where: str) -> list[str]:
    """The items of a substituted `withSequence` (`count`/`start`/`end`/`format`), as operator.go expandSequence
    makes them: `count` N means `end` = start + N - 1 (so a negative count counts down past start), 0 is none."""
    try:
        start = int(str(spec.get("start", 0)))
        if spec.get("end") is not None:
            end = int(str(spec["end"]))
        elif spec.get("count") is not None:
            count = int(str(spec["count"]))
            if count == 0:
                return []
            end = start + count - 1
        else:
            raise ManifestError(f"{where}: withSequence needs count or end")
        step = 1 if end >= start else -1
        values = list(range(start, end + step, step))
        fmt = spec.get("format")
        return [fmt % value if fmt else str(value) for value in values]
    except (TypeError, ValueError) as error:
        raise ManifestError(f"{where}: invalid withSequence {dict(spec)}: {error}") from None


def dag_phase(dag: Template, targets: list[str], phases: Mapping[str, Phase]) -> tuple[Phase, str | None]:
    """Argo's assessDAGPhase (workflow/controller/dag.go) once no task can start: the DAG fails with the first
    target whose branch failed, where a task that did not run (Skipped, Omitted, never started) takes the
    worst phase of the tasks it depends on, and a target's `continueOn` forgives its own failure.
    Returns the phase and the failed target, if any."""
    branch: dict[str, Phase] = {}

    def phase_of(name: str) -> Phase:
        if name not in branch:
            phase = phases[name]
            if phase not in COMPLETED:
                parents = [phase_of(dep) for dep in dag.tasks[name].deps]
                phase = next((p for p in parents if p in FAILED_OR_ERROR), Phase.SUCCEEDED)
            branch[name] = phase
        return branch[name]

    for name in targets:
        phase = phase_of(name)
        if phase in FAILED_OR_ERROR and not dag.tasks[name].continues_on(phase):
            return phase, name
    return Phase.SUCCEEDED, None
