"""The local runner's controller: walks the DAGs of a Workflow manifest as Argo does and decides which tasks start
and how each task and DAG ends; runner/dispatch.py runs the pods it creates, runner/resume.py says what an
earlier run in the workdir leaves to this one.

One thread (the caller's) owns every node; each running attempt waits for its process in a worker thread and
reports back through the dispatcher's queue.

Semantics follow Argo v4.1 (docs/local-runner.md): `depends` (plain `A` = Succeeded, Skipped or Daemoned, plus
continueOn) and `dependencies`; `when` after substitution (false -> Skipped; dependents
proceed); withItems / withParam / withSequence (an empty withParam or withSequence -> Skipped, "empty
params"; an empty withItems is no fan-out);
an expanded task fails when a child fails; retryStrategy (limit, retryPolicy, expression,
backoff); activeDeadlineSeconds and timeout; parallelism of the workflow and of each DAG;
failFast; the DAG's phase from its leaf (target) tasks, where a Skipped/Omitted task takes
the worst phase of the tasks it depends on.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from steps.contract import LOCAL_VOLUMES_FOLDER
from workflows.argo.dag import dag_phase, ordered
from workflows.argo.documents import with_submitted_parameters
from workflows.argo.errors import ArgoError, ExpressionError, ManifestError, UnresolvedReference
from workflows.argo.expr import DependsRef, evaluate_when
from workflows.argo.phase import FAILED_OR_ERROR, Phase, depends_result
from workflows.argo.subst import item_label, item_scope, substitute
from workflows.argo.validate import Task, Template, Workflow, load_workflow
from workflows.runner.bindings import Bindings
from workflows.runner.dispatch import PodDispatcher
from workflows.runner.errors import RunnerError
from workflows.runner.events import RunListener
from workflows.runner.nodes import DagNode, PodNode, RunResult, TaskNode, describe_failure, log_name, short_labels
from workflows.runner.process import default_python
from workflows.runner.resume import fingerprint, stop_leftovers, take_over, workflow_name
from workflows.runner.state import RunState
from workflows.runner.timeline import build_timeline
from workflows.runner.workdir import WorkdirLock, make_workdir, real_dir

PENDING, RUNNING, SUCCEEDED, FAILED = Phase.PENDING, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED
ERROR, SKIPPED, OMITTED = Phase.ERROR, Phase.SKIPPED, Phase.OMITTED
TEMPLATE_FAIL_FAST = "template has failed or errored children and failFast enabled"  # Argo's own message


@dataclass
class RunOptions:
    workdir: Path
    cwd: Path = field(default_factory=Path.cwd)
    parallelism: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    resume: bool = True
    new_run: bool = False   # a new workflow name in a workdir that holds a run, on the same volumes
    backoff_scale: float = 1.0
    kill_grace_s: float = 10.0
    env: Mapping[str, str] | None = None
    python: str = field(default_factory=default_python)


def _now() -> float:
    return time.time()


class Engine:
    def __init__(self, manifest: dict[str, Any] | Workflow, options: RunOptions, listener: RunListener | None = None) -> None:
        self.workflow = manifest if isinstance(manifest, Workflow) else load_workflow(
            with_submitted_parameters(manifest, options.parameters))
        self.options = options
        self.workdir = options.workdir.resolve()
        self.listener = listener or RunListener()
        self.base_env = dict(os.environ if options.env is None else options.env)
        self.pods: list[PodNode] = []
        self.all_tasks: list[TaskNode] = []
        self.limit = self._global_limit()
        self.parameters = self._parameters()
        make_workdir(self.workdir)
        self.lock = WorkdirLock(self.workdir)
        self.lock.acquire()
        try:
            for folder in ("logs", LOCAL_VOLUMES_FOLDER):
                real_dir(self.workdir / folder, self.workdir)
            self.state = RunState.open(self.workdir)
            self.name = workflow_name(self.workflow, self.state, self.workdir, options.new_run)
            self.stopped_leftovers = stop_leftovers(self.state, self.workdir, options.kill_grace_s)
        except BaseException:
            self.lock.release()
            raise
        self.warnings = self.workflow.warnings + self.stopped_leftovers
        self.created = self.state.created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.scope = self._workflow_scope()
        self.bindings = Bindings(self.workflow, self.scope, self.name)
        self.pods_in_flight = PodDispatcher(
            workflow=self.workflow, run_name=self.name, workdir=self.workdir, cwd=options.cwd, python=options.python,
            base_env=self.base_env, state=self.state, bindings=self.bindings, listener=self.listener,
            limit=self.limit, backoff_scale=options.backoff_scale, kill_grace_s=options.kill_grace_s)
        self.deadline: float | None = None
        self.started = _now()
        self.interrupted = False

    @property
    def running_count(self) -> int:
        return len(self.pods_in_flight.running)

    # --- setup ---------------------------------------------------------------------------------

    def _global_limit(self) -> int | None:
        limits = [n for n in (self.options.parallelism, self.workflow.parallelism) if n]
        return min(limits) if limits else None

    def _parameters(self) -> dict[str, str]:
        values = {name: param.value or "" for name, param in self.workflow.parameters.items()}
        for name, value in self.options.parameters.items():
            if name not in values:
                raise ManifestError(f"unknown workflow parameter '{name}'; the workflow has: "
                                    f"{', '.join(values) or 'none'}")
            enum = self.workflow.parameters[name].enum
            if enum and value not in enum:
                raise ManifestError(f"workflow parameter '{name}' = {value!r} is not one of {', '.join(enum)}")
            values[name] = value
        return values

    def _workflow_scope(self) -> dict[str, str]:
        wf = self.workflow
        scope = {
            "workflow.name": self.name,
            "workflow.namespace": wf.namespace,
            "workflow.uid": hashlib.sha1(f"{self.workdir}:{self.name}".encode()).hexdigest()[:8] + "-local",
            "workflow.serviceAccountName": wf.service_account,
            "workflow.creationTimestamp": self.created,
            "workflow.mainEntrypoint": wf.entrypoint,
        }
        scope.update({f"workflow.parameters.{k}": v for k, v in self.parameters.items()})
        scope.update({f"workflow.labels.{k}": str(v) for k, v in wf.labels.items()})
        scope.update({f"workflow.annotations.{k}": str(v) for k, v in wf.annotations.items()})
        return scope

    # --- the main loop ---------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.started = _now()
        if self.workflow.active_deadline_seconds:
            self.deadline = self.started + self.workflow.active_deadline_seconds
        try:
            root = self._root()
        except BaseException:
            self.lock.release()
            raise
        self.listener.workflow_started(self)
        pods = self.pods_in_flight
        try:
            idle = 0
            while True:
                self._reconcile(root)
                pods.launch()
                if root.fulfilled and not pods.running:
                    break
                if not pods.running and not pods.waiting_retries():
                    # pods that ended at once (could not start) let tasks finish on the next pass
                    idle += 1
                    if idle > 3:
                        raise RunnerError("the runner stalled: no task can start and none is running")
                    continue
                idle = 0
                pods.wait(self.deadline)
                if self.deadline is not None and _now() >= self.deadline:
                    self._workflow_deadline()
        except KeyboardInterrupt:
            self.interrupted = True
            self._stop_everything("interrupted")
            pods.kill_all("interrupted")
            pods.drain()
            root.phase, root.message = FAILED, "interrupted"
        except BaseException:
            pods.kill_all("the runner stopped")
            pods.drain()
            raise
        finally:
            try:
                self.state.save()
            finally:
                self.lock.release()
        finished = _now()
        result = RunResult(self.name, root.phase, root.message, self.workdir, self.started, finished, root,
                           self.interrupted, self.pods)
        self.state.write_timeline(build_timeline(result, self.all_tasks))
        self.listener.workflow_ended(self, result)
        return result

    def _root(self) -> DagNode:
        entry = self.workflow.templates[self.workflow.entrypoint]
        if entry.kind == "container":
            # A workflow whose entrypoint is a container: a one-task DAG around it.
            task = Task(name=entry.name, template=entry.name, raw={}, arguments={}, depends=None, dependencies=[],
                        when=None, with_items=None, with_param=None, with_sequence=None)
            entry = Template(name=f"{entry.name}-entry", kind="dag", raw={}, tasks={entry.name: task})
            self.workflow.templates[entry.name] = entry
            args = {k: v for k, v in self.parameters.items()}
            task.arguments = {p.name: "{{workflow.parameters." + p.name + "}}" for p in
                              self.workflow.templates[task.template].inputs if p.name in args}
        root = DagNode("", self.name, entry, None, None, None, parent=None, fresh_upstream=False)
        root.inputs = self.bindings.inputs(entry, dict(self.parameters), f"entrypoint '{entry.name}'", {})
        self._init_dag(root)
        return root

    def _init_dag(self, dag: DagNode) -> None:
        template = dag.template
        dag.phase = RUNNING
        dag.started = _now()
        if template.targets:
            dag.targets = self._targets(dag)
            needed = set(dag.targets)
            for target in dag.targets:
                needed |= template.tasks[target].ancestors
            dag.needed = needed
        for spec in ordered(template.tasks):
            node = TaskNode(dag, spec, self.workflow.templates[spec.template])
            dag.tasks[spec.name] = node
            dag.order.append(node)
            self.all_tasks.append(node)

    def _targets(self, dag: DagNode) -> list[str]:
        """`dag.target`, substituted (it may be a parameter) and checked against the DAG's tasks."""
        scope = self.bindings.dag_scope(dag)
        where = f"dag '{dag.template.name}' target"
        targets = substitute(" ".join(dag.template.targets or []), scope, where).split()
        unknown = [name for name in targets if name not in dag.template.tasks]
        if unknown:
            raise ManifestError(f"{where}: '{' '.join(unknown)}' is not a task of this dag "
                                f"(tasks: {', '.join(dag.template.tasks)})")
        return targets

    def _workflow_deadline(self) -> None:
        reason = f"the workflow's activeDeadlineSeconds ({self.workflow.active_deadline_seconds} s) exceeded"
        self.deadline = None
        self._stop_everything(reason)
        self.pods_in_flight.kill_all(reason)
        self.pods_in_flight.drain()

    def _stop_everything(self, reason: str) -> None:
        """The workflow halts (its deadline, an interrupt): no DAG starts a task, no queued pod starts."""
        for task in self.all_tasks:
            if task.dag.stopped_by is None:
                task.dag.stopped_by = reason
        self.pods_in_flight.halt(reason)

    # --- reconciling the DAGs ------------------------------------------------------------------------

    def _reconcile(self, dag: DagNode) -> None:
        if dag.fulfilled:
            return
        self._start_waiting_dags(dag)
        while True:
            self._settle_running_tasks(dag)
            if dag.step_running():
                break
            self._check_fail_fast(dag)
            if not self._start_ready_tasks(dag):
                break
        if any(task.phase == RUNNING for task in dag.order):
            return
        pending = [t for t in dag.order if t.phase == PENDING and (dag.needed is None or t.name in dag.needed)]
        if pending and dag.stopped_by is None:
            return  # something can still start (deps are fulfilled only after running tasks finish)
        dag.phase, dag.message = self._assess(dag)
        dag.finished = _now()
        if dag.parent is not None:
            dag.parent.running_dags -= 1
        if dag.task is not None:
            self.listener.dag_ended(dag)

    def _start_waiting_dags(self, dag: DagNode) -> None:
        while dag.waiting_dags and (self.pods_in_flight.halted is not None or dag.has_room()):
            self._start_dag(dag.waiting_dags.pop(0))

    def _settle_running_tasks(self, dag: DagNode) -> None:
        for task in dag.order:
            if task.phase == RUNNING:
                self._settle(task)

    def _settle(self, task: TaskNode) -> None:
        for child in task.children:
            if isinstance(child, DagNode) and child.phase == RUNNING:
                self._reconcile(child)
        self._maybe_finish_task(task)

    def _start_ready_tasks(self, dag: DagNode) -> bool:
        """Start every task whose dependencies are done (one step of a paced DAG); True if any task left
        Pending. Tasks that end at once (skipped, omitted, reused) let their dependants start in the same pass."""
        changed = False
        for task in dag.order:
            if task.phase == PENDING:
                self._maybe_start_task(dag, task)
                changed = changed or task.phase != PENDING
            if task.phase == RUNNING:
                self._settle(task)
        return changed

    def _child_ended(self, child: PodNode | DagNode) -> None:
        if isinstance(child, PodNode):
            self.listener.pod_ended(child)
        else:
            self.listener.dag_ended(child)

    def _maybe_start_task(self, dag: DagNode, task: TaskNode) -> None:
        if dag.needed is not None and task.name not in dag.needed:
            return
        deps = [dag.tasks[name] for name in task.spec.deps]
        if any(not dep.fulfilled for dep in deps):
            return
        try:
            execute = self._depends_satisfied(dag, task)
        except ExpressionError as error:
            self._task_done(task, ERROR, str(error))
            return
        if not execute:
            self._task_done(task, OMITTED, "omitted: depends condition not met")
            return
        if dag.stopped_by is not None:
            return  # failFast: no new task starts
        where = f"task '{task.key}'"
        try:
            scope = self.bindings.task_scope(dag, task)
            items = self.bindings.expand(task, scope, where)
        except (UnresolvedReference, ExpressionError, ManifestError) as error:
            self._task_done(task, ERROR, str(error))
            return
        if items is not None and not items:
            self._task_done(task, SKIPPED, "Skipped, empty params")
            return
        task.phase, task.ready = RUNNING, _now()
        self.listener.task_started(task, 0 if items is None else len(items))
        labels = short_labels(items) if items is not None else [""]
        for (index, item), label in zip([(None, None)] if items is None else list(enumerate(items)), labels, strict=True):
            self._create_child(dag, task, scope, index, item, label)
        self._maybe_finish_task(task)

    def _depends_satisfied(self, dag: DagNode, task: TaskNode) -> bool:
        spec = task.spec
        if spec.depends is None:
            return all(self._result(dag, DependsRef(name, None)) for name in spec.deps)
        return spec.depends.evaluate(lambda ref: self._result(dag, ref))

    def _result(self, dag: DagNode, ref: DependsRef) -> bool:
        task = dag.tasks[ref.task]
        phase = task.phase
        if ref.result is None:
            return depends_result(None, phase, continues_on=task.spec.continue_on)
        children = [child.phase for child in task.children] if task.spec.expands else None
        return depends_result(ref.result, phase, children)

    def _create_child(self, dag: DagNode, task: TaskNode, scope: dict[str, str], index: int | None, item: Any,
                      label: str) -> None:
        spec = task.spec
        suffix = "" if index is None else item_label(index, item)
        key = task.key if index is None else f"{task.key}.{index}"
        display = task.key + suffix
        local = dict(scope)
        if index is not None:
            local.update(item_scope(item))
        template = task.template
        if template.kind == "dag":
            nested = DagNode(key, display, template, task, index, item, parent=dag,
                             fresh_upstream=self._fresh(dag, task))
            nested.prefix = key + "."
            child: PodNode | DagNode = nested
        else:
            child = PodNode(key, display, template, task, index, item, dag=dag)
            child.log_path = self.workdir / "logs" / f"{log_name(key)}.log"
        child.label = task.key if index is None else f"{task.key}({index}{':' + label if label else ''})"
        task.children.append(child)
        where = f"task '{display}'"
        explain = self.bindings.explain(dag, task)
        try:
            if spec.when is not None:
                condition = substitute(spec.when, local, f"{where} when", explain)
                if not evaluate_when(condition):
                    child.phase, child.message = SKIPPED, f"when '{condition}' evaluated false"
                    self._child_ended(child)
                    return
            arguments = self.bindings.arguments(dag, task, local, where)
            child.inputs = self.bindings.inputs(template, arguments, where, self.scope)
        except (UnresolvedReference, ExpressionError, ManifestError) as error:
            child.phase, child.message = ERROR, str(error)
            self._child_ended(child)
            return
        if isinstance(child, DagNode):
            dag.waiting_dags.append(child)
            self._start_waiting_dags(dag)
            return
        self._queue_pod(child)

    def _start_dag(self, child: DagNode) -> None:
        """A nested DAG invocation starts, or is omitted once the workflow halted (deadline, interrupt)."""
        parent = child.parent
        assert parent is not None
        halted = self.pods_in_flight.halted
        if halted is not None:
            child.phase, child.message = OMITTED, f"not started: {halted}"
            self.listener.dag_ended(child)
            return
        try:
            self._init_dag(child)
        except ArgoError as error:
            child.phase, child.message = ERROR, str(error)
            self.listener.dag_ended(child)
            return
        parent.running_dags += 1
        self.listener.dag_started(child)

    def _fresh(self, dag: DagNode, task: TaskNode) -> bool:
        return dag.fresh_upstream or any(dag.tasks[name].ran_now for name in task.spec.deps)

    def _queue_pod(self, pod: PodNode) -> None:
        """A new pod either takes over an earlier run's success (resume) or is queued to run."""
        self.pods.append(pod)
        try:
            resolved = self.bindings.resolved_template(pod, 0)
        except (UnresolvedReference, ManifestError) as error:
            self.pods_in_flight.pod_done(pod, ERROR, str(error))
            return
        pod.fingerprint = fingerprint(pod.template.name, resolved, pod.inputs)
        task = pod.task
        assert task is not None
        previous = self.state.node(pod.key)
        if (self.options.resume and previous and previous.get("phase") == SUCCEEDED
                and previous.get("fingerprint") == pod.fingerprint and not self._fresh(pod.dag, task)
                and take_over(pod, previous, self.workdir)):
            self.listener.pod_ended(pod)
            return
        self.pods_in_flight.enqueue(pod)

    # --- tasks and DAGs finishing ---------------------------------------------------------------------------

    def _maybe_finish_task(self, task: TaskNode) -> None:
        if task.phase != RUNNING or any(not child.fulfilled for child in task.children):
            return
        pods = [child for child in task.children if isinstance(child, PodNode)]
        if pods and len(pods) == len(task.children) and all(pod.reused for pod in pods):
            task.started = min((p.started for p in pods if p.started), default=task.started)
            task.finished = max((p.finished for p in pods if p.finished), default=None)
        phases = [child.phase for child in task.children]
        if not task.spec.expands:
            child = task.children[0]
            phase, message = child.phase, child.message
        else:
            failed = [child for child in task.children if child.phase in FAILED_OR_ERROR]
            stopped = [child for child in task.children if child.phase == OMITTED]
            if failed:
                phase, message = failed[-1].phase, f"{len(failed)} of {len(phases)} failed"
            elif stopped:
                phase, message = OMITTED, f"{len(stopped)} of {len(phases)} not started"
            else:
                phase, message = SUCCEEDED, ""
        self._task_done(task, phase, message)

    def _task_done(self, task: TaskNode, phase: Phase, message: str) -> None:
        task.phase, task.message = phase, message
        task.finished = task.finished or _now()
        task.started = task.started or task.finished
        self.listener.task_ended(task)

    def _check_fail_fast(self, dag: DagNode) -> None:
        """Whether a failure stops the DAG from starting more tasks, decided only while nothing of the DAG runs
        (see _reconcile), so neither the decision nor the failure it names depends on which process ended first.
        The template's own `failFast` (operator.go checkParallelism): any failed child — a pod or a nested DAG,
        handled or not — stops it, with Argo's message. `dag.failFast` (assessDAGPhase): a target task that has
        ended with its branch failed does; a failure a dependant handles decides no target."""
        if dag.stopped_by is not None:
            return
        if dag.template.stop_on_failed_child and any(_has_failed_child(task) for task in dag.order):
            dag.stopped_by = TEMPLATE_FAIL_FAST
            self.listener.fail_fast(dag, None)
            return
        if not dag.template.fail_fast:
            return
        targets = dag.targets or [t.name for t in dag.order if not t.spec.dependents]
        decided = [name for name in targets if dag.tasks[name].fulfilled]
        _, failed_target = dag_phase(dag.template, decided, {name: t.phase for name, t in dag.tasks.items()})
        if failed_target is None:
            return
        culprit = _culprit(dag, failed_target)
        dag.stopped_by = f"'{culprit.name}' {culprit.phase.lower()}"
        dag.stopped_task = culprit
        self.listener.fail_fast(dag, culprit)

    def _assess(self, dag: DagNode) -> tuple[Phase, str]:
        if dag.stopped_by is not None:
            if dag.stopped_task is not None:
                task = dag.stopped_task
                phase = task.phase if task.phase in FAILED_OR_ERROR else FAILED
                return phase, describe_failure(task)
            return FAILED, dag.stopped_by
        targets = dag.targets or [t.name for t in dag.order if not t.spec.dependents]
        phase, failed_target = dag_phase(dag.template, targets, {name: t.phase for name, t in dag.tasks.items()})
        if failed_target is None:
            return phase, ""
        return phase, describe_failure(_culprit(dag, failed_target))


def _culprit(dag: DagNode, failed_target: str) -> TaskNode:
    """The failure a failed DAG names: the first failed task, in the DAG's order, on the branch of the target that
    failed it (so not a failure that `continueOn` forgave beside it, as `B` in examples/dag-continue-on-fail.yaml)."""
    branch = dag.template.tasks[failed_target].ancestors | {failed_target}
    return next((t for t in dag.order if t.name in branch and t.phase in FAILED_OR_ERROR), dag.tasks[failed_target])


def _has_failed_child(task: TaskNode) -> bool:
    return task.phase in FAILED_OR_ERROR or any(child.phase in FAILED_OR_ERROR for child in task.children)


def run_workflow(manifest: dict[str, Any], options: RunOptions, listener: RunListener | None = None) -> RunResult:
    """Run a Workflow manifest locally; see RunOptions. Raises ManifestError before anything runs."""
    return Engine(manifest, options, listener).run()


