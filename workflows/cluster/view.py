"""What a person sees of a workflow: the node tree, the live task table while waiting, why it failed."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from steps.contract import EXIT_BAD_INPUT, EXIT_GATE_CLOSED, EXIT_REGRESSION

GROUPING = ("Retry", "TaskGroup", "StepGroup")
LEAVES = ("Pod", "Container", "HTTP", "Plugin")
BAD = ("Failed", "Error")
PHASE_STYLE = {
    "Succeeded": "green", "Running": "cyan", "Pending": "yellow", "Failed": "red", "Error": "red",
    "Omitted": "dim", "Skipped": "dim",
}
_EXIT_CODE = re.compile(r"exit code (\d+)")
# Exit codes with a meaning in the step contracts (docs/design.md).
EXIT_HINTS = {
    ("memory-gate", EXIT_GATE_CLOSED):
        "the memory gate closed: the estimate does not fit the GPUs (RUN/gate/estimate.json); "
        "add GPUs, shrink batch or sequence length, or resubmit with -p gate_mode=warn",
    ("verdict", EXIT_REGRESSION):
        "score regression against the previous run beyond regression_threshold; the new "
        "scores are published (RUN/summary/summary.md)",
}
GENERIC_EXIT_HINTS = {EXIT_BAD_INPUT: "bad input: the step's log names the argument and the valid values"}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def duration_of(item: dict[str, Any], now: datetime | None = None) -> str:
    """finishedAt - startedAt, or time so far while running."""
    started = parse_time(item.get("startedAt"))
    if started is None:
        return ""
    finished = parse_time(item.get("finishedAt")) or now or datetime.now(timezone.utc)
    return format_duration((finished - started).total_seconds())


def _phase(text: str | None) -> Text:
    phase = text or "Pending"
    return Text(phase, style=PHASE_STYLE.get(phase, ""))


@dataclass(frozen=True)
class NodeTree:
    """Argo's flat `status.nodes` as a tree: DAG members under their DAG, attempts under their retry."""

    nodes: dict[str, dict[str, Any]]
    root: str | None
    parent: dict[str, str | None]

    @classmethod
    def of(cls, workflow: dict[str, Any]) -> NodeTree:
        nodes = dict((workflow.get("status") or {}).get("nodes") or {})
        name = (workflow.get("metadata") or {}).get("name")
        root = name if name in nodes else next(
            (node_id for node_id, node in nodes.items() if not node.get("boundaryID")), None)
        # A Retry's attempts are named `<retry>(N)`, a fan-out's items `<task>(N:item)`; the other
        # children Argo lists on a task node are its dependents (the DAG's edges), not its members.
        grouped = {child: node_id for node_id, node in nodes.items() if node.get("type") in GROUPING
                   for child in node.get("children") or ()
                   if child in nodes and (nodes[child].get("name") or "").startswith((node.get("name") or "") + "(")}
        parent: dict[str, str | None] = {}
        for node_id, node in nodes.items():
            if node_id == root:
                parent[node_id] = None
            elif node_id in grouped:
                parent[node_id] = grouped[node_id]
            elif node.get("boundaryID") in nodes and node.get("boundaryID") != node_id:
                parent[node_id] = node["boundaryID"]
            else:
                parent[node_id] = root
        return cls(nodes, root, parent)

    def children(self, node_id: str | None) -> list[dict[str, Any]]:
        kids = [self.nodes[kid] for kid, up in self.parent.items() if up == node_id and kid != node_id]
        return sorted(kids, key=lambda node: (node.get("startedAt") or "~", label(node)))

    def walk(self) -> list[tuple[int, dict[str, Any]]]:
        """(depth, node) in display order, the root first."""
        if self.root is None:
            return []
        out: list[tuple[int, dict[str, Any]]] = []
        stack = [(0, self.nodes[self.root])]
        seen: set[str] = set()
        while stack:
            depth, node = stack.pop()
            if node["id"] in seen:
                continue
            seen.add(node["id"])
            out.append((depth, node))
            stack.extend((depth + 1, kid) for kid in reversed(self.children(node["id"])))
        return out

    def tasks(self) -> list[dict[str, Any]]:
        """The root DAG's own tasks: one row each in the live view."""
        return self.children(self.root) if self.root else []

    def fan_out_items(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """A fan-out's items: a TaskGroup's children, or those of the fan-outs inside a DAG task
        (the pipeline's eval tasks call a DAG template that holds the `withParam`)."""
        if node.get("type") == "TaskGroup":
            return self.children(node["id"])
        if node.get("type") == "DAG":
            return [item for kid in self.children(node["id"]) for item in self.fan_out_items(kid)]
        return []

    def counts(self, node: dict[str, Any]) -> tuple[int, int]:
        """(succeeded, total) of a fan-out's items."""
        items = self.fan_out_items(node)
        return sum(1 for item in items if item.get("phase") == "Succeeded"), len(items)

    def failures(self) -> list[tuple[str, dict[str, Any]]]:
        """(task label, node) for each failed pod; of a retried task only the last attempt."""
        failed: dict[str, tuple[str, dict[str, Any]]] = {}
        for node_id, node in self.nodes.items():
            if node.get("type") not in LEAVES or node.get("phase") not in BAD:
                continue
            up = self.parent.get(node_id)
            owner = self.nodes.get(up) if up else None
            if owner is not None and owner.get("type") == "Retry":
                key, name = owner["id"], label(owner)
                previous = failed.get(key)
                if previous and (previous[1].get("startedAt") or "") > (node.get("startedAt") or ""):
                    continue
            else:
                key, name = node_id, label(node)
            failed[key] = (name, node)
        return sorted(failed.values(), key=lambda item: (item[1].get("startedAt") or "", item[0]))


def label(node: dict[str, Any]) -> str:
    return node.get("displayName") or node.get("name") or node.get("id", "?")


def exit_hint(node: dict[str, Any]) -> str:
    match = _EXIT_CODE.search(node.get("message") or "")
    if not match:
        return ""
    code = int(match.group(1))
    template = node.get("templateName") or ""
    return EXIT_HINTS.get((template, code)) or GENERIC_EXIT_HINTS.get(code, "")


def failure_lines(workflow: dict[str, Any]) -> list[str]:
    """Why a workflow failed: each failed step's message (with what its exit code means), else the workflow's."""
    lines = []
    for name, node in NodeTree.of(workflow).failures():
        message = node.get("message") or node.get("phase", "Failed")
        hint = exit_hint(node)
        lines.append(f"{name}: {message}" + (f" -> {hint}" if hint else ""))
    if not lines:
        status = workflow.get("status") or {}
        lines.append(status.get("message") or f"workflow {status.get('phase', 'failed')}")
    return lines


def summary_rows(workflow: dict[str, Any], url: str | None = None, now: datetime | None = None) -> list[tuple[str, str]]:
    meta = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    rows = [
        ("Name", meta.get("name", "")),
        ("Namespace", meta.get("namespace", "")),
        ("Phase", status.get("phase") or "Pending"),
        ("Progress", status.get("progress", "")),
        ("Started", status.get("startedAt", "")),
        ("Duration", duration_of(status, now)),
        ("Message", status.get("message", "")),
        ("UI", url or ""),
    ]
    return [(key, value) for key, value in rows if value]


def status_view(workflow: dict[str, Any], url: str | None = None, now: datetime | None = None) -> Group:
    """`tunebench status NAME`: a summary and the node tree with phases and durations."""
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for key, value in summary_rows(workflow, url, now):
        header.add_row(key, _phase(value) if key == "Phase" else Text(value))
    tree = NodeTree.of(workflow)
    walked = tree.walk()
    if not walked:
        return Group(header, Text("no nodes yet", style="dim"))
    branches: dict[str, Tree] = {}
    top: Tree | None = None
    for _depth, node in walked:
        line = Text.assemble(label(node), "  ", _phase(node.get("phase")), "  ",
                             (duration_of(node, now), "dim"))
        if node.get("type") in ("TaskGroup",):
            done, total = tree.counts(node)
            line.append(f"  {done}/{total}", style="dim")
        if node.get("phase") in BAD and node.get("message"):
            line.append(f"  {node['message']}", style="red")
        up = tree.parent.get(node["id"])
        if top is None:
            top = Tree(line)
            branches[node["id"]] = top
        else:
            branches[node["id"]] = branches.get(up or "", top).add(line)
    return Group(header, Text(""), top if top is not None else Text(""))


def progress_table(workflow: dict[str, Any], now: datetime | None = None) -> Table:
    """The live view: one row per task of the pipeline DAG, fan-outs with their done/total."""
    meta = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    table = Table(title=f"{meta.get('name', '')}  {status.get('phase') or 'Pending'}  "
                        f"{status.get('progress', '')}  {duration_of(status, now)}".rstrip(),
                  title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("task")
    table.add_column("phase")
    table.add_column("items", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("message", overflow="fold")
    tree = NodeTree.of(workflow)
    for node in tree.tasks():
        done, total = tree.counts(node)
        table.add_row(label(node), _phase(node.get("phase")), f"{done}/{total}" if total else "",
                      duration_of(node, now), node.get("message", "") if node.get("phase") in BAD else "")
    return table


class Follower:
    """Shows a workflow while `ArgoClient.wait` polls it.

    On a terminal: a live table refreshed on each poll. Elsewhere (CI logs, pipes): one line
    per change of a task's phase, so logs stay readable.
    """

    def __init__(self, console: Console, live: bool | None = None):
        self.console = console
        self.live_mode = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._seen: dict[str, str] = {}

    def __enter__(self) -> Follower:
        if self.live_mode:
            self._live = Live(Text("waiting for the first status..."), console=self.console,
                              auto_refresh=False, transient=False)
            self._live.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, workflow: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.update(progress_table(workflow), refresh=True)
            return
        status = workflow.get("status") or {}
        tree = NodeTree.of(workflow)
        changes = []
        for node in tree.tasks():
            phase = node.get("phase") or "Pending"
            done, total = tree.counts(node)
            if total:
                phase = f"{phase} {done}/{total}"
            finished = node.get("phase") in ("Succeeded", "Failed", "Error")
            changes.append((label(node), phase, duration_of(node) if finished else ""))
        # The workflow's own line: first while it starts, last when it ends.
        whole = ("workflow", status.get("phase") or "Pending", duration_of(status) if status.get("finishedAt") else "")
        changes = changes + [whole] if status.get("finishedAt") else [whole, *changes]
        for name, phase, took in changes:
            if self._seen.get(name) != phase:
                self._seen[name] = phase
                stamp = datetime.now().strftime("%H:%M:%S")
                self.console.print(f"{stamp}  {name}: {phase}" + (f" ({took})" if took else ""),
                                   markup=False, highlight=False)


def runs_table(workflows: list[dict[str, Any]], now: datetime | None = None) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "phase", "started", "duration", "progress", "from"):
        table.add_column(column)
    for workflow in workflows:
        meta = workflow.get("metadata") or {}
        status = workflow.get("status") or {}
        table.add_row(meta.get("name", ""), _phase(status.get("phase")), status.get("startedAt", ""),
                      duration_of(status, now), status.get("progress", ""), origin(meta.get("labels") or {}))
    return table


def origin(labels: dict[str, str]) -> str:
    """What started a workflow, from the labels Argo sets: a cron, a template, or a direct submit."""
    if labels.get("workflows.argoproj.io/cron-workflow"):
        return "cron " + labels["workflows.argoproj.io/cron-workflow"]
    if labels.get("workflows.argoproj.io/workflow-template"):
        return "template " + labels["workflows.argoproj.io/workflow-template"]
    return ""
