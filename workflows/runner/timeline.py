"""`timeline.json`: when each task was ready, started and ended, for profiling a run after the fact."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from workflows.runner.nodes import PodNode, RunResult, TaskNode


def build_timeline(result: RunResult, tasks: list[TaskNode]) -> dict[str, Any]:
    """What `timeline.json` holds: ready/start/end of every task, pod and attempt, as ISO times and seconds from the start."""
    def iso(ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")

    def offset(ts: float | None) -> float | None:
        return None if ts is None else round(ts - result.started, 3)

    nodes = []
    for task in tasks:
        pods = [c for c in task.children if isinstance(c, PodNode)]
        nodes.append({
            "task": task.key, "template": task.template.name, "phase": task.phase, "message": task.message,
            "reused": bool(pods) and all(pod.reused for pod in pods),
            "ready": iso(task.ready), "start": iso(task.started), "end": iso(task.finished),
            "start_s": offset(task.started), "end_s": offset(task.finished),
            "duration_s": None if task.started is None or task.finished is None else round(task.finished - task.started, 3),
            "pods": [{
                "node": pod.display, "label": pod.label, "key": pod.key, "phase": pod.phase, "message": pod.message,
                "reused": pod.reused, "item": pod.item,
                "log": str(pod.log_path.relative_to(result.workdir)) if pod.log_path else None,
                "start": iso(pod.started), "end": iso(pod.finished),
                "start_s": None if pod.reused else offset(pod.started),
                "end_s": None if pod.reused else offset(pod.finished),
                "attempts": [{"number": a.number + 1, "status": a.status, "exit_code": a.exit_code,
                              "message": a.message, "start": iso(a.started), "end": iso(a.finished),
                              "duration_s": None if a.finished is None else round(a.finished - a.started, 3)}
                             for a in pod.attempts],
            } for pod in pods],
        })
    return {
        "workflow": result.workflow_name, "phase": result.phase, "message": result.message,
        "start": iso(result.started), "end": iso(result.finished),
        "duration_s": round(result.finished - result.started, 3), "tasks": nodes,
    }
