"""What `tunebench run` shows while it runs: a live table on a terminal, one line per event otherwise.

Each task's state and duration, a fan-out's completion, retries, and on a failure the tail of
the failed task's log (the whole log stays in `<workdir>/logs/`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from workflows.argo.phase import Phase
from workflows.runner.events import RunListener, RunView
from workflows.runner.nodes import DagNode, PodNode, RunResult, TaskNode
from workflows.runner.process import AttemptResult

PENDING, RUNNING, SUCCEEDED, FAILED = Phase.PENDING, Phase.RUNNING, Phase.SUCCEEDED, Phase.FAILED
ERROR, SKIPPED, OMITTED = Phase.ERROR, Phase.SKIPPED, Phase.OMITTED

STYLES = {SUCCEEDED: "green", FAILED: "red", ERROR: "red", SKIPPED: "yellow", OMITTED: "yellow",
          RUNNING: "cyan", PENDING: "dim"}
ICONS = {SUCCEEDED: "✔", FAILED: "✖", ERROR: "✖", SKIPPED: "⤼", OMITTED: "∅", RUNNING: "▶", PENDING: "·"}
TAIL_LINES = 25


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def log_tail(path: Path | None, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of the last attempt in a task's log."""
    if path is None or not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    start = text.rfind("\n==== ")
    if start >= 0:
        text = text[text.index("\n", start + 1) + 1:] if "\n" in text[start + 1:] else ""
    return text.rstrip("\n").splitlines()[-lines:]


class ConsoleReporter(RunListener):
    """The console's listener of a run; `live=None` picks the live table when the console is a terminal."""

    def __init__(self, console: Console | None = None, live: bool | None = None, quiet: bool = False) -> None:
        self.console = console or Console(emoji=False, highlight=False)
        self.use_live = self.console.is_terminal if live is None else live
        self.quiet = quiet
        self.run: RunView | None = None
        self.live: Live | None = None
        self.started = time.time()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _out(self, *renderables: Any, **kwargs: Any) -> None:
        kwargs.setdefault("highlight", False)
        self.console.print(*renderables, emoji=False, **kwargs)

    def _print(self, *renderables: Any) -> None:
        if self.quiet:
            return
        target = self.live.console if self.live is not None else self.console
        target.print(*renderables, highlight=False, emoji=False)

    # events
    def workflow_started(self, run: RunView) -> None:
        self.run = run
        self.started = run.started
        limit = run.limit if run.limit is not None else "unlimited"
        if not self.quiet:
            self._out(f"[bold]tunebench run[/]: workflow [bold]{run.name}[/] in {run.workdir} "
                               f"(parallelism {limit})", highlight=False)
            for warning in run.warnings:
                self._out(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        if self.use_live and not self.quiet:
            self.live = Live(_View(self), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def task_started(self, task: TaskNode, items: int) -> None:
        if task.spec.expands and not self.use_live:
            self._print(f"  [cyan]▶[/] {escape(task.key)}: fan-out of {items} task(s)")

    def pod_started(self, pod: PodNode, attempt: int, argv: list[str]) -> None:
        if self.use_live:
            return
        attempt_note = f" (attempt {attempt})" if attempt > 1 else ""
        rerun = f" (not reused: {escape(pod.rerun_reason)})" if pod.rerun_reason and attempt == 1 else ""
        self._print(f"  [cyan]▶[/] {escape(pod.label)} started{attempt_note}{rerun}")

    def pod_retrying(self, pod: PodNode, delay_s: float, result: AttemptResult) -> None:
        self._print(f"  [yellow]↻[/] {escape(pod.label)}: {result.status} ({escape(result.message)}), "
                    f"retry {len(pod.attempts)} in {delay_s:.1f}s; log: {pod.log_path}")

    def pod_ended(self, pod: PodNode) -> None:
        phase = pod.phase
        style, icon = STYLES.get(phase, ""), ICONS.get(phase, "?")
        if pod.reused:
            if not self.use_live:
                self._print(f"  [green]⟲[/] {escape(pod.label)} reused (succeeded in an earlier run)")
            return
        if phase == SUCCEEDED and self.use_live:
            return
        parts = [f"  [{style}]{icon}[/] {escape(pod.label)} [{style}]{phase}[/]"]
        if pod.started and pod.finished and pod.attempts:
            parts.append(format_duration(pod.finished - pod.started)
                         + (f", {len(pod.attempts)} attempts" if len(pod.attempts) > 1 else ""))
        if pod.message and phase != SUCCEEDED:
            parts.append(f"— {escape(pod.message)}")
        self._print(" ".join(parts))
        if phase in (FAILED, ERROR) and pod.attempts:
            tail = log_tail(pod.log_path)
            if tail:
                body = Text("\n".join("    │ " + line for line in tail), style="dim")
                self._print(f"    last {len(tail)} lines of {pod.log_path}:")
                self._print(body)

    def task_ended(self, task: TaskNode) -> None:
        phase = task.phase
        style, icon = STYLES.get(phase, ""), ICONS.get(phase, "?")
        if phase in (SKIPPED, OMITTED) and not task.children:
            self._print(f"  [{style}]{icon}[/] {escape(task.key)} [{style}]{phase}[/] {escape(task.message)}")
        elif task.spec.expands and not self.use_live:
            done = sum(1 for c in task.children if c.phase == SUCCEEDED)
            self._print(f"  [{style}]{icon}[/] {escape(task.key)} [{style}]{phase}[/]: {done}/{len(task.children)} "
                        f"succeeded in {format_duration((task.finished or 0) - (task.started or 0))}")

    def fail_fast(self, dag: DagNode, task: TaskNode | None) -> None:
        where = f" in {dag.label}" if dag.task is not None else ""
        self._print(f"  [red]fail-fast[/]{where}: {escape(dag.stopped_by or '')}; no further tasks start")

    def workflow_ended(self, run: RunView, result: RunResult) -> None:
        self.close()
        if self.quiet:
            return
        self._out(self.summary_table(run, final=True))
        style = STYLES.get(result.phase, "")
        message = f": {escape(result.message)}" if result.message else ""
        self._out(f"workflow [bold]{result.workflow_name}[/] [{style}]{result.phase}[/] in "
                           f"{format_duration(result.finished - result.started)}{message}", highlight=False)
        self._out(f"logs: {result.workdir / 'logs'}   timeline: {result.workdir / 'timeline.json'}",
                           highlight=False)

    # the table
    def summary_table(self, run: RunView, final: bool = False) -> Table:
        now = time.time()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("task")
        table.add_column("state")
        table.add_column("progress")
        table.add_column("time", justify="right")
        table.add_column("note", overflow="fold", max_width=70)
        for task in run.all_tasks:
            phase = task.phase
            pods = [c for c in task.children if isinstance(c, PodNode)]
            running = [p for p in pods if p.phase == RUNNING]
            style = STYLES.get(phase, "")
            if phase == PENDING:
                state = Text("waiting" if task.dag.stopped_by is None else "not run", style="dim")
            else:
                state = Text(f"{ICONS.get(phase, '')} {phase}", style=style)
            progress: Any = ""
            if task.spec.expands and task.children:
                done = sum(1 for c in task.children if c.fulfilled)
                progress = Text(f"{'█' * round(8 * done / len(task.children)):<8} {done}/{len(task.children)}"
                                + (f" · {len(running)} running" if running else ""))
            end = task.finished if task.finished is not None else (now if task.started is not None else None)
            duration = format_duration(end - task.started) if task.started is not None and end is not None else ""
            note = task.message
            if pods and all(p.reused for p in pods) and phase == SUCCEEDED:
                note = "reused from an earlier run"
                duration = ""
            elif len(pods) == 1 and pods[0].phase == RUNNING and len(pods[0].attempts) > 1:
                note = f"attempt {len(pods[0].attempts)}" + (f" — {pods[0].message}" if pods[0].retry_at else "")
            elif len(pods) == 1 and pods[0].message and phase != SUCCEEDED:
                note = pods[0].message
            elif phase == PENDING and task.dag.stopped_by is None and _held_for_its_step(task):
                note = "dependencies done; waits for the running tasks of its DAG to end (failFast)"
            table.add_row(Text(task.key), state, progress, duration, Text(note or "", style="dim"))
        if not final:
            limit = run.limit if run.limit is not None else "∞"
            table.caption = (f"{run.name} · {format_duration(now - run.started)} elapsed · "
                             f"{run.running_count} running (limit {limit}) · logs in {run.workdir / 'logs'}")
        return table


def _held_for_its_step(task: TaskNode) -> bool:
    """Ready, but its DAG's step is still running (DagNode.step_running)."""
    return task.dag.step_running() and all(task.dag.tasks[name].fulfilled for name in task.spec.deps)


class _View:
    def __init__(self, reporter: ConsoleReporter) -> None:
        self.reporter = reporter

    def __rich__(self) -> Any:
        if self.reporter.run is None:
            return Text("")
        return self.reporter.summary_table(self.reporter.run)
