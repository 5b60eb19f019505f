"""Running the pods the engine created: the queue of pods ready to start, each attempt as a local process
(or a JobSet's group of processes) waited for in a worker thread, retries with their backoff, and the
workflow-wide parallelism.

The engine decides which pods exist and when a task or DAG is done; the dispatcher decides when each queued
pod's next attempt starts and records how every pod ended (state.json, the listener).
"""
from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from workflows.argo.durations import parse_duration
from workflows.argo.errors import ArgoError
from workflows.argo.phase import Phase
from workflows.argo.validate import Workflow
from workflows.runner.bindings import Bindings
from workflows.runner.errors import RunnerError
from workflows.runner.events import RunListener
from workflows.runner.jobset import LocalJobSet
from workflows.runner.nodes import Attempt, PodNode, log_name, mark_ran, mark_started
from workflows.runner.process import AttemptResult, AttemptRunner, LocalProcess, PrepareError, prepare
from workflows.runner.retry import decide, retry_limit
from workflows.runner.state import RunState

RUNNING, SUCCEEDED, FAILED = Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED
ERROR, OMITTED = Phase.ERROR, Phase.OMITTED
POLL_S = 0.5  # how long a wait may last without an event, so deadlines and retry times are seen


class PodDispatcher:
    def __init__(self, *, workflow: Workflow, run_name: str, workdir: Path, cwd: Path, python: str,
                 base_env: dict[str, str], state: RunState, bindings: Bindings, listener: RunListener,
                 limit: int | None, backoff_scale: float, kill_grace_s: float) -> None:
        self.workflow = workflow
        self.run_name = run_name
        self.workdir = workdir
        self.cwd = cwd
        self.python = python
        self.base_env = base_env
        self.state = state
        self.bindings = bindings
        self.listener = listener
        self.limit = limit  # most pods at once in the whole workflow; None: unlimited
        self.backoff_scale = backoff_scale
        self.kill_grace_s = kill_grace_s
        self.events: queue.Queue[tuple[PodNode, AttemptResult]] = queue.Queue()
        self.ready: list[PodNode] = []
        self.running: set[PodNode] = set()
        self.sequence = itertools.count()
        self.halted: str | None = None  # why nothing more starts at all (the workflow's deadline, an interrupt)

    # --- the queue -------------------------------------------------------------------------------------

    def enqueue(self, pod: PodNode) -> None:
        pod.sequence = next(self.sequence)
        self.ready.append(pod)

    def waiting_retries(self) -> bool:
        return any(pod.retry_at is not None for pod in self.ready)

    def launch(self) -> None:
        """Start what may start now: the longest remaining path first, within the workflow's and each DAG's
        parallelism, once a retry's backoff has passed."""
        if not self.ready:
            return
        now = time.time()
        self.ready.sort(key=lambda p: (-(p.task.spec.path_length if p.task else 0), p.sequence))
        for pod in list(self.ready):
            if self.limit is not None and len(self.running) >= self.limit:
                return
            if pod.retry_at is not None and pod.retry_at > now:
                continue
            if not pod.attempts and self.halted is not None:
                self.ready.remove(pod)
                pod.phase, pod.message = OMITTED, f"not started: {self.halted}"
                self.listener.pod_ended(pod)
                continue
            if not pod.dag.has_room():
                continue
            self.ready.remove(pod)
            self._start_attempt(pod)

    def halt(self, reason: str) -> None:
        """Nothing more starts: a queued pod is Omitted, or Failed if an earlier attempt of it ran."""
        self.halted = reason
        for pod in list(self.ready):
            self.ready.remove(pod)
            pod.retry_at = None
            if pod.attempts:
                pod.phase, pod.message, pod.finished = FAILED, reason, time.time()
            else:
                pod.phase, pod.message = OMITTED, f"not started: {reason}"
            self.listener.pod_ended(pod)

    # --- waiting for attempts ------------------------------------------------------------------------------

    def wait(self, deadline: float | None) -> None:
        """Handle the attempts that end within a short wait (no longer than to the next retry or `deadline`)."""
        timeout = POLL_S
        now = time.time()
        retry_times = [pod.retry_at for pod in self.ready if pod.retry_at is not None]
        if retry_times:
            timeout = max(0.0, min(timeout, min(retry_times) - now))
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - now))
        try:
            pod, result = self.events.get(timeout=timeout)
            self._finish_attempt(pod, result)
            while True:
                pod, result = self.events.get_nowait()
                self._finish_attempt(pod, result)
        except queue.Empty:
            pass

    def drain(self) -> None:
        """Wait for every running attempt to end; none is retried."""
        while self.running:
            pod, result = self.events.get()
            self._finish_attempt(pod, result, final=True)

    def kill_all(self, reason: str) -> None:
        threads = []
        for pod in list(self.running):
            if pod.running is not None:
                thread = threading.Thread(target=pod.running.kill, args=(reason,), daemon=True)
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()

    # --- attempts ------------------------------------------------------------------------------------------

    def _start_attempt(self, pod: PodNode) -> None:
        number = len(pod.attempts)
        pod.retry_at = None
        group: LocalJobSet | None = None
        try:
            resolved = self.bindings.resolved_template(pod, number)
            if pod.template.kind == "resource":
                group = self._local_jobset(pod, resolved, number)
                argv, deadline = [f"JobSet {group.plan.name}"], group.deadline_s
            else:
                spec = prepare(pod.template, resolved, workdir=self.workdir, cwd=self.cwd,
                               base_env=self.base_env, secret_env_names=self.workflow.secret_env_names,
                               volume_kinds=self.workflow.volumes, pod_key=f"{log_name(pod.key)}-{number}",
                               python=self.python)
                spec.deadline_s, spec.deadline_reason = self._attempt_deadline(pod, resolved, spec.deadline_s)
                argv, deadline = spec.argv, spec.deadline_s
            limit = retry_limit(resolved.get("retryStrategy"), f"template '{pod.template.name}' retryStrategy")
        except (RunnerError, ArgoError, PrepareError, ValueError) as error:
            now = time.time()
            pod.attempts.append(Attempt(number, now, now, ERROR, None, str(error)))
            pod.started = pod.started or now
            self.pod_done(pod, ERROR, str(error))
            return
        if deadline is not None and deadline <= 0:
            now = time.time()
            message = "timeout exceeded before the attempt could start"
            pod.attempts.append(Attempt(number, now, now, FAILED, None, message))
            self.pod_done(pod, FAILED, message)
            return
        pod.phase = RUNNING
        now = time.time()
        pod.started = pod.started or now
        pod.attempts.append(Attempt(number, now))
        mark_started(pod, now)
        total = "∞" if limit is None else str(limit + 1)
        header = (f"\n==== {pod.display}: attempt {number + 1}/{total} at "
                  f"{datetime.now().strftime('%Y-%m-%d %H:%M:%S')} (tunebench run, workflow {self.run_name})\n")
        process = group.with_header(header) if group is not None else LocalProcess(
            spec, pod.log_path or self.workdir / "logs" / "pod.log", header, self.kill_grace_s,
            on_start=functools.partial(self.state.process_started, pod.key))
        pod.running = process
        self.running.add(pod)
        pod.dag.running_pods += 1
        mark_ran(pod)
        pod.resolved = resolved
        self.listener.pod_started(pod, number + 1, argv)
        thread = threading.Thread(target=self._run_attempt, args=(pod, process), name=f"pod-{pod.key}", daemon=True)
        thread.start()

    def _local_jobset(self, pod: PodNode, resolved: dict[str, Any], number: int) -> LocalJobSet:
        """The JobSet of a `resource` template as a group of local processes, one per node (runner/jobset.py)."""
        def start_node(node: dict[str, Any], key: str, volume_kinds: dict[str, str], log: Path) -> LocalProcess:
            spec = prepare(pod.template, node, workdir=self.workdir, cwd=self.cwd, base_env=self.base_env,
                           secret_env_names=self.workflow.secret_env_names,
                           volume_kinds={**self.workflow.volumes, **volume_kinds}, pod_key=key, python=self.python)
            return LocalProcess(spec, log, f"\n==== {pod.display}: {key}\n", self.kill_grace_s,
                                on_start=lambda leader: self.state.process_started(key, leader))

        active = resolved.get("activeDeadlineSeconds")
        deadline = self._attempt_deadline(pod, resolved, float(active) if active is not None else None)
        return LocalJobSet(resolved, start_node, pod.log_path or self.workdir / "logs" / "pod.log",
                           f"{log_name(pod.key)}-{number}", self.workdir, deadline, self.state.process_ended)

    def _run_attempt(self, pod: PodNode, process: AttemptRunner) -> None:
        try:
            result = process.run()
        except Exception as error:  # noqa: BLE001 - reported as the attempt's error, never lost
            now = time.time()
            result = AttemptResult(ERROR, None, f"runner error: {error!r}", now, now)
        self.events.put((pod, result))

    def _attempt_deadline(self, pod: PodNode, resolved: dict[str, Any],
                          active: float | None) -> tuple[float | None, str]:
        """Seconds this attempt may run, and what to say when it runs out."""
        limits: list[tuple[float, str]] = []
        if active is not None:
            limits.append((active, f"activeDeadlineSeconds ({active:g} s) exceeded"))
        if resolved.get("timeout") is not None:
            total = parse_duration(resolved["timeout"], f"template '{pod.template.name}' timeout")
            first = pod.attempts[0].started if pod.attempts else time.time()
            limits.append((total - (time.time() - first), f"timeout ({resolved['timeout']}) exceeded"))
        if not limits:
            return None, ""
        return min(limits)

    # --- how attempts end: retries, the pod's final phase -----------------------------------------------------

    def _finish_attempt(self, pod: PodNode, result: AttemptResult, final: bool = False) -> None:
        self.running.discard(pod)
        self.state.process_ended(pod.key)
        pod.dag.running_pods -= 1
        pod.running = None
        attempt = pod.attempts[-1]
        attempt.started, attempt.finished = result.started, result.finished
        attempt.status, attempt.exit_code, attempt.message = result.status, result.exit_code, result.message
        pod.nominal_elapsed += result.finished - result.started
        if result.status == SUCCEEDED:
            pod.outputs, pod.written = result.outputs, result.written
            self.pod_done(pod, SUCCEEDED, "")
            return
        if not final and self.halted is None:
            resolved = pod.resolved or self.bindings.resolved_template(pod, len(pod.attempts) - 1)
            try:
                decision = decide(resolved.get("retryStrategy"), f"template '{pod.template.name}' retryStrategy",
                                  len(pod.attempts) - 1, result, pod.nominal_elapsed,
                                  self.base_env.get("TRANSIENT_ERROR_PATTERN"))
            except ArgoError as error:  # Argo's processNodeRetries error: the node is an Error
                self.pod_done(pod, ERROR, f"{result.message}; {error}")
                return
            delay = decision.delay
            if decision.note:
                pod.message = f"{result.message} ({decision.note})"
            if delay is not None:
                scaled = delay * self.backoff_scale
                pod.retry_at = time.time() + scaled
                pod.nominal_elapsed += delay
                pod.phase = RUNNING
                pod.message = f"{result.message}; retrying in {scaled:.0f}s"
                self.ready.append(pod)
                self.state.record(pod)
                self.listener.pod_retrying(pod, scaled, result)
                return
        self.pod_done(pod, result.status, result.message)

    def pod_done(self, pod: PodNode, phase: Phase, message: str) -> None:
        """A pod's final phase, recorded in state.json (a resume reads it) and told to the listener."""
        pod.phase, pod.finished = phase, time.time()
        if message or phase != SUCCEEDED:
            pod.message = pod.message if pod.message and message and pod.message.startswith(message) else message
        else:
            pod.message = ""
        self.state.record(pod)
        self.state.save()
        self.listener.pod_ended(pod)
