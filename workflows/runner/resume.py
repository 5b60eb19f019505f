"""What an earlier run in the workdir means for this one: the workflow's name (the same run resumed, or a
new one on the same volumes), the steps it left running, and which of its successes a pod takes over."""
from __future__ import annotations

import hashlib
import json
import secrets
import string
from pathlib import Path
from typing import Any

from workflows.argo.phase import Phase
from workflows.argo.validate import Workflow
from workflows.runner.errors import RunnerError
from workflows.runner.nodes import Attempt, PodNode
from workflows.runner.state import RunState
from workflows.runner.survivors import stop, survivors
from workflows.runner.written import missing

# Kubernetes cuts a generateName to 58 characters before it adds 5 random ones (the validator checked both).
GENERATE_NAME_KEPT = 58


def _random_suffix() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(5))


def workflow_name(workflow: Workflow, state: RunState, workdir: Path, new_run: bool) -> str:
    """The run's name: the stored one when resuming, else metadata.name or generateName plus 5 random
    characters (recorded in state.json). A workdir holding another workflow's run is refused."""
    wanted = workflow.name
    prefix = (workflow.generate_name or "")[:GENERATE_NAME_KEPT] or None
    stored = state.workflow_name
    if stored:
        if (wanted and stored != wanted) or (not wanted and prefix and not stored.startswith(prefix)):
            raise RunnerError(
                f"{workdir} holds the run '{stored}' of another workflow; use another --workdir "
                "(or delete this one to start over)")
        if not new_run:
            return stored
        if wanted:
            raise RunnerError(
                f"--new-run: the workflow's metadata.name '{wanted}' is fixed, and {workdir} already holds "
                "its run (Argo refuses a second Workflow of one name too); give it metadata.generateName, "
                "or use another --workdir")
        state.forget_nodes()
    name = wanted or f"{prefix}{_random_suffix()}"
    state.begin(name, prefix or wanted or "")
    return name


def stop_leftovers(state: RunState, workdir: Path, kill_grace_s: float) -> list[str]:
    """A resume first stops any step an earlier, killed run left running (it would write beside ours)."""
    stopped = []
    for key, leader in state.leftover_processes().items():
        found = stop(leader, kill_grace_s)
        if survivors(leader):
            raise RunnerError(f"pod '{key}' of an earlier run in {workdir} is still running (pids "
                              f"{', '.join(map(str, found))}) and could not be stopped; stop it, then run again")
        if found:
            stopped.append(f"pod '{key}' of an earlier run was still running (pids {', '.join(map(str, found))}); "
                           "stopped it")
    state.forget_processes()
    return stopped


def fingerprint(template: str, resolved: dict[str, Any], inputs: dict[str, str]) -> str:
    """What a pod runs, as the manifest spells it (before path mapping): equal fingerprints, equal work."""
    container = resolved.get("container") or {}
    env = []
    for item in container.get("env") or []:
        if "valueFrom" in item:
            env.append([item.get("name"), "secret:" + json.dumps(item["valueFrom"], sort_keys=True)])
        else:
            env.append([item.get("name"), item.get("value")])
    data = {"template": template, "command": container.get("command"), "args": container.get("args"), "env": env,
            "workingDir": container.get("workingDir"), "inputs": inputs,
            "outputs": (resolved.get("outputs") or {}).get("parameters")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def take_over(pod: PodNode, previous: dict[str, Any], workdir: Path) -> bool:
    """Take an earlier success over, unless its record is damaged or a file it wrote is gone (then the pod
    reruns, and `pod.rerun_reason` says why)."""
    try:
        written = [str(path) for path in previous.get("written") or []]
        attempts = [Attempt(**a) for a in previous.get("attempts") or []]
        outputs = {str(k): str(v) for k, v in (previous.get("outputs") or {}).items()}
    except (TypeError, AttributeError):
        pod.rerun_reason = "its record in state.json is damaged"
        return False
    gone = missing(written, workdir)
    if gone:
        shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        pod.rerun_reason = f"files it wrote are gone: {shown}"
        return False
    pod.reused, pod.written, pod.attempts, pod.outputs = True, written, attempts, outputs
    pod.started, pod.finished = previous.get("started"), previous.get("finished")
    pod.phase, pod.message = Phase.SUCCEEDED, "reused: succeeded in an earlier run with the same inputs"
    return True
