"""The workdir's memory between runs: `state.json` (workflow name, every pod's phase, fingerprint and
outputs, so a rerun resumes) and `timeline.json`. Both are written atomically."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steps.common import write_json_atomic
from workflows.naming import is_dns_subdomain
from workflows.runner.errors import RunnerError
from workflows.runner.nodes import PodNode
from workflows.runner.survivors import ProcessIdentity

STATE_VERSION = 1
def _check_shape(data: Any, path: Path) -> dict[str, Any]:
    """The parsed state.json, or a RunnerError saying in one line what is wrong with it."""
    def broken(what: str) -> RunnerError:
        return RunnerError(f"{path}: {what}; it was not written by this runner or is damaged: "
                           "delete it to start over in this workdir, or use another --workdir")

    if not isinstance(data, dict):
        raise broken(f"expected a JSON object, found {type(data).__name__}")
    if data.get("version") != STATE_VERSION:
        raise RunnerError(f"{path} was written by another version of the runner (version {data.get('version')!r}, "
                          f"this one writes {STATE_VERSION}); use another --workdir")
    for key in ("workflow", "nodes"):
        if not isinstance(data.get(key), dict):
            raise broken(f"'{key}' is missing or not an object")
    if not all(isinstance(node, dict) for node in data["nodes"].values()):
        raise broken("an entry of 'nodes' is not an object")
    name = data["workflow"].get("name")
    if name is not None and not (isinstance(name, str) and is_dns_subdomain(name)):
        raise broken(f"the run name {name!r} is not a valid workflow name (lowercase letters, digits, '-' and '.', "
                     "starting and ending with a letter or digit)")
    processes = data.setdefault("processes", {})
    if not isinstance(processes, dict):
        raise broken("'processes' is not an object")
    return data


class RunState:
    def __init__(self, workdir: Path, data: dict[str, Any]) -> None:
        self.workdir = workdir
        self.path = workdir / "state.json"
        self.data = data
        self._lock = threading.Lock()

    @classmethod
    def open(cls, workdir: Path) -> RunState:
        path = workdir / "state.json"
        if path.exists():
            try:
                data = _check_shape(json.loads(path.read_text(encoding="utf-8")), path)
            except (OSError, ValueError, RecursionError) as error:  # JSON or UTF-8 decoding; nesting too deep
                raise RunnerError(f"{path} is unreadable ({error}); delete it to start over in this workdir") from None
        else:
            data = {"version": STATE_VERSION, "workflow": {}, "nodes": {}, "processes": {}}
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(workdir, data)

    @property
    def workflow_name(self) -> str | None:
        return self.data["workflow"].get("name")

    @property
    def created(self) -> str | None:
        return self.data["workflow"].get("created")

    def begin(self, name: str, origin: str) -> None:
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.data["workflow"] = {"name": name, "origin": origin, "created": created}
        self.save()

    def forget_nodes(self) -> None:
        """Start a new run here: nothing of the earlier run's pods is reused (its processes are still
        known, so that a leftover one is stopped before the new run starts)."""
        with self._lock:
            self.data["nodes"] = {}

    def node(self, key: str) -> dict[str, Any] | None:
        return self.data["nodes"].get(key)

    def record(self, pod: PodNode) -> None:
        with self._lock:
            self.data["nodes"][pod.key] = {
                "node": pod.display,
                "phase": pod.phase,
                "message": pod.message,
                "fingerprint": pod.fingerprint,
                "outputs": pod.outputs,
                "started": pod.started,
                "finished": pod.finished,
                "attempts": [
                    {"number": a.number, "started": a.started, "finished": a.finished, "status": a.status,
                     "exit_code": a.exit_code, "message": a.message}
                    for a in pod.attempts
                ],
                "log": str(pod.log_path.relative_to(self.workdir)) if pod.log_path else None,
                "written": pod.written,
            }

    def process_started(self, key: str, leader: ProcessIdentity) -> None:
        """Remember a running attempt's session leader until it ends (see survivors.py); saved at once."""
        with self._lock:
            self.data["processes"][key] = leader.as_dict()
        self.save()

    def process_ended(self, key: str) -> None:
        with self._lock:
            self.data["processes"].pop(key, None)

    def leftover_processes(self) -> dict[str, ProcessIdentity]:
        """Attempts an earlier run started and did not see end (it was killed)."""
        found = {}
        for key, data in self.data["processes"].items():
            leader = ProcessIdentity.from_dict(data)
            if leader is not None:
                found[key] = leader
        return found

    def forget_processes(self) -> None:
        with self._lock:
            self.data["processes"] = {}
        self.save()

    def save(self) -> None:
        with self._lock:
            write_json_atomic(self.path, self.data)

    def write_timeline(self, timeline: dict[str, Any]) -> None:
        write_json_atomic(self.workdir / "timeline.json", timeline)
