"""Small hand-written Workflow manifests for the runner tests: every container is `python -c CODE`."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from workflows.runner import RunOptions, run_workflow
from workflows.runner.nodes import RunResult

WORKSPACE = {"name": "workspace", "persistentVolumeClaim": {"claimName": "ws"}}
MOUNT = {"name": "workspace", "mountPath": "/workspace"}


def py(name: str, code: str, inputs: tuple[str, ...] = (), outputs: dict[str, str] | None = None,
       **extra: Any) -> dict[str, Any]:
    """A container template running `python -c CODE input1 input2 ...` with the workspace mounted."""
    template: dict[str, Any] = {
        "name": name,
        "container": {
            "image": "python:3.11",
            "command": ["python", "-c"],
            "args": [code] + ["{{inputs.parameters." + i + "}}" for i in inputs],
            "volumeMounts": [dict(MOUNT)],
        },
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": i} for i in inputs]}
    if outputs:
        template["outputs"] = {"parameters": [{"name": k, "valueFrom": {"path": v}} for k, v in outputs.items()]}
    container_extra = extra.pop("container", None)
    if container_extra:
        template["container"].update(container_extra)
    template.update(extra)
    return template


def task(name: str, template: str, depends: str | None = None, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "template": template}
    if depends:
        data["depends"] = depends
    args = fields.pop("args", None)
    if args:
        data["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in args.items()]}
    data.update(fields)
    return data


def workflow(templates: list[dict[str, Any]], tasks: list[dict[str, Any]], parameters: dict[str, str] | None = None,
             dag: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    main = {"name": "main", "dag": {"tasks": tasks, **(dag or {})}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "test-"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()]},
            "volumes": [copy.deepcopy(WORKSPACE)],
            "templates": templates + [main],
            **spec,
        },
    }


def run(manifest: dict[str, Any], workdir: Path, **options: Any) -> RunResult:
    options.setdefault("backoff_scale", 0.0)
    options.setdefault("kill_grace_s", 1.0)
    options.setdefault("cwd", workdir)
    return run_workflow(manifest, RunOptions(workdir=workdir, **options))


def phases(result: RunResult) -> dict[str, str]:
    """task key -> phase, from the run's timeline.json."""
    timeline = json.loads((result.workdir / "timeline.json").read_text())
    return {entry["task"]: entry["phase"] for entry in timeline["tasks"]}


def pods(result: RunResult) -> dict[str, dict[str, Any]]:
    timeline = json.loads((result.workdir / "timeline.json").read_text())
    return {pod["node"]: pod for entry in timeline["tasks"] for pod in entry["pods"]}


def most_at_once(windows: list[tuple[float, float]]) -> int:
    """The most (start, end) windows open at one time."""
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def workspace(result: RunResult) -> Path:
    return result.volume("workspace")


# code snippets (the workspace is at /workspace inside the "container")
APPEND = "import sys; open('/workspace/' + sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
FAIL = "import sys; sys.exit(int(sys.argv[1]))"
OK = "pass"
