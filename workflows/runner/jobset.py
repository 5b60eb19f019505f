"""The one `resource` manifest the local runner emulates: a JobSet, as N local processes started together.

A JobSet of one replicated Job of N pods (workflows/jobset.py renders it) becomes N
processes of its pod's container, each with what JobSet and the Job controller give a pod:
JOB_COMPLETION_INDEX, and the rendezvous env pointing at node 0 on 127.0.0.1 (a free port
per group start, so concurrent runs never meet). Kubernetes' `$(VAR)` expansion of the
args is done from the container's env, as the kubelet does.

What the controllers would do, the group does:
- every node succeeds: the JobSet is Completed;
- a node fails: the others are stopped at once (SIGTERM, then SIGKILL after the grace
  period; JobSet deletes the whole group), so no node waits on a dead peer; then
  - an exit code the Job's podFailurePolicy sends to `FailJob` (with a JobSet rule
    `FailJobSet` on `PodFailurePolicy`), or the Job's activeDeadlineSeconds (a rule on
    `DeadlineExceeded`), fails the JobSet;
  - otherwise the group restarts while `failurePolicy.maxRestarts` allows, then fails.
The verdict is the resource template's own successCondition/failureCondition, evaluated
over the JobSet status this produces (`status.terminalState`, `status.restarts`).
Any other resource (another kind, another action, a JobSet shape beyond this) is refused
by name before the run starts.
"""
from __future__ import annotations

import copy
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflows.argo.phase import Phase
from workflows.argo.jobset import condition_holds, plan
from workflows.runner.process import ERROR, FAILED, SUCCEEDED, AttemptResult, LocalProcess, PrepareError
from workflows.runner.workdir import open_log

LOCALHOST = "127.0.0.1"
_VAR_REF = re.compile(r"\$\((\w+)\)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def expand_var_refs(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args; an unknown name stays as written, as there."""
    return _VAR_REF.sub(lambda match: env.get(match.group(1), match.group(0)), text)


# The engine's part: one node's process from a container template (`{"container": ...,
# "activeDeadlineSeconds": ...}`), a key for its emptyDir folders, the pod's own volume kinds, its log.
NodeFactory = Callable[[dict[str, Any], str, dict[str, str], Path], LocalProcess]


class LocalJobSet:
    """Runs the group like LocalProcess runs a pod: `run()` blocks and returns the attempt's result;
    `kill()` from another thread stops every node."""

    def __init__(self, template: dict[str, Any], start_node: NodeFactory, log_path: Path, key: str, workdir: Path,
                 deadline: tuple[float | None, str] = (None, ""),
                 node_ended: Callable[[str], None] = lambda key: None) -> None:
        self.plan = plan(template)
        self.start_node = start_node
        self.node_ended = node_ended  # with the node's key, when its process is gone
        self.log_path = log_path
        self.key = key
        self.workdir = workdir
        self.deadline_s, self.deadline_reason = deadline  # the resource template's own, over every restart
        self.header = ""
        self.killed_reason: str | None = None
        self._lock = threading.Lock()
        self._nodes: list[LocalProcess] = []

    def with_header(self, header: str) -> LocalJobSet:
        self.header = header
        return self

    def note(self, line: str) -> None:
        """A line in the task's own log (each node has a log of its own)."""
        with open_log(self.log_path, self.workdir) as log:
            log.write(f"{self.header}tunebench run: {line}\n".encode())
        self.header = ""

    def node_log(self, index: int) -> Path:
        return self.log_path.with_name(f"{self.log_path.stem}.node-{index}{self.log_path.suffix}")

    def _node_template(self, index: int, port: int) -> dict[str, Any]:
        container = copy.deepcopy(self.plan.pod_spec["containers"][0])
        overrides = {"JOB_COMPLETION_INDEX": str(index), "MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(port)}
        env = [item for item in container.get("env") or [] if item.get("name") not in overrides]
        env_values = {item["name"]: str(item.get("value", "")) for item in env if "value" in item}
        env_values.update(overrides)
        container["env"] = env + [{"name": name, "value": value} for name, value in overrides.items()]
        for field in ("command", "args"):
            container[field] = [expand_var_refs(str(part), env_values) for part in container.get(field) or []]
        node: dict[str, Any] = {"container": container}
        if self.plan.deadline_s is not None:
            node["activeDeadlineSeconds"] = self.plan.deadline_s
        return node

    def _volume_kinds(self) -> dict[str, str]:
        return {volume["name"]: "emptyDir" for volume in self.plan.pod_spec.get("volumes") or [] if "emptyDir" in volume}

    def _node_key(self, restart: int, index: int) -> str:
        return f"{self.key}-r{restart}-n{index}"

    def _start_group(self, restart: int) -> list[LocalProcess]:
        port = _free_port()
        nodes = [self.start_node(self._node_template(index, port), self._node_key(restart, index),
                                 self._volume_kinds(), self.node_log(index))
                 for index in range(self.plan.nodes)]
        with self._lock:
            self._nodes = nodes
            if self.killed_reason is not None:
                for node in nodes:
                    node.kill(self.killed_reason)
        return nodes

    def _run_node(self, node: LocalProcess, key: str) -> AttemptResult:
        try:
            return node.run()
        finally:
            self.node_ended(key)

    def _run_group(self, nodes: list[LocalProcess], restart: int) -> list[AttemptResult | None]:
        """Every node's result; on the first failure the others are stopped (JobSet deletes the group)."""
        results: list[AttemptResult | None] = [None] * len(nodes)
        done: queue.Queue[tuple[int, AttemptResult]] = queue.Queue()
        for index, node in enumerate(nodes):
            threading.Thread(target=lambda i=index, n=node: done.put((i, self._run_node(n, self._node_key(restart, i)))),
                             name=f"{self.key}-node-{index}", daemon=True).start()
        stopping = False
        for _ in nodes:
            index, result = done.get()
            results[index] = result
            if result.status != SUCCEEDED and not stopping:
                stopping = True
                reason = f"JobSet {self.plan.name}: node {index} failed ({result.message}); the group is stopped"
                for other, node in enumerate(nodes):
                    if other != index:
                        threading.Thread(target=node.kill, args=(reason,), daemon=True).start()
        return results

    def _verdict(self, status: dict[str, Any]) -> Phase | None:
        obj = {"status": status}
        if condition_holds(self.plan.failure_condition, obj):
            return FAILED
        if condition_holds(self.plan.success_condition, obj):
            return SUCCEEDED
        return None

    def run(self) -> AttemptResult:
        timer = None
        if self.deadline_s is not None:
            timer = threading.Timer(self.deadline_s, self.kill, args=(self.deadline_reason,))
            timer.daemon = True
            timer.start()
        try:
            return self._run()
        except PrepareError as error:  # a node cannot start as configured (a required secret is missing...)
            return AttemptResult(ERROR, None, str(error), time.time(), time.time())
        finally:
            if timer is not None:
                timer.cancel()

    def _run(self) -> AttemptResult:
        started = time.time()
        restarts = 0
        while True:
            nodes = self._start_group(restarts)
            self.note(f"JobSet {self.plan.name}: {self.plan.nodes} node(s) started (restarts {restarts}/"
                      f"{self.plan.max_restarts}); logs: {', '.join(self.node_log(i).name for i in range(len(nodes)))}")
            results = self._run_group(nodes, restarts)
            failed = [(index, result) for index, result in enumerate(results) if result and result.status != SUCCEEDED]
            if not failed:
                return self._finish(started, {"terminalState": "Completed", "restarts": restarts},
                                    f"all {self.plan.nodes} nodes succeeded", 0)
            index, first = min(failed, key=lambda item: item[1].finished)
            what = f"node {index}: {first.message}"
            if self.killed_reason is not None:
                return AttemptResult(FAILED, first.exit_code, self.killed_reason, started, time.time())
            if first.exit_code in self.plan.fail_exit_codes:
                why = f"{what} (podFailurePolicy FailJob, JobSet rule FailJobSet)"
            elif self.plan.fail_on_deadline and nodes[index].killed_reason is not None:
                why = f"{what} (Job activeDeadlineSeconds: DeadlineExceeded, JobSet rule FailJobSet)"
            elif restarts >= self.plan.max_restarts:
                why = f"{what} (failurePolicy.maxRestarts {self.plan.max_restarts} reached)"
            else:
                restarts += 1
                self.note(f"JobSet {self.plan.name}: {what}; restarting the group ({restarts}/{self.plan.max_restarts})")
                continue
            return self._finish(started, {"terminalState": "Failed", "restarts": restarts}, why, first.exit_code)

    def _finish(self, started: float, status: dict[str, Any], why: str, exit_code: int | None) -> AttemptResult:
        verdict = self._verdict(status)
        if verdict is None:
            verdict, why = FAILED, f"{why}; but neither condition holds for status {status}"
        self.note(f"JobSet {self.plan.name}: {status['terminalState']}: {why}")
        message = "" if verdict == SUCCEEDED else f"JobSet {status['terminalState']}: {why}"
        return AttemptResult(verdict, 0 if verdict == SUCCEEDED else exit_code, message, started, time.time())

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed_reason is None:
                self.killed_reason = reason
            nodes = list(self._nodes)
        for node in nodes:
            node.kill(reason)
