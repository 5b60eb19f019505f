"""The workdir's memory between runs: `state.json` (workflow name, every pod's phase, fingerprint and
outputs, so a rerun resumes) and `timeline.json`. Both are written atomically."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.common import write_json_atomic
from workflows.runner.errors import RunnerError

if TYPE_CHECKING:
    from workflows.runner.engine import PodNode

STATE_VERSION = 1


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
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise RunnerError(f"{path} is unreadable ({error}); delete it to start over in this workdir") from None
            if data.get("version") != STATE_VERSION:
                raise RunnerError(f"{path} was written by another version of the runner; use another --workdir")
        else:
            data = {"version": STATE_VERSION, "workflow": {}, "nodes": {}}
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
            }

    def save(self) -> None:
        with self._lock:
            write_json_atomic(self.path, self.data)

    def write_timeline(self, timeline: dict[str, Any]) -> None:
        write_json_atomic(self.workdir / "timeline.json", timeline)
