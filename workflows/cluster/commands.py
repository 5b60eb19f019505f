"""`tunebench submit | apply | status | retry`: thin typer commands over `workflows.cluster`.

Only typer and the standard library at import time: `tunebench --help` stays fast.
Exit codes: 0 done (or the workflow succeeded), 1 the cluster said no or the workflow
failed, 2 bad input (config, flags, parameters), 130 interrupted while following.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from steps.contract import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, rebenchmark_cron_name
from workflows.cli_common import PipelineArg

if TYPE_CHECKING:
    from rich.console import Console

    from workflows.cluster.client import ArgoClient

ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="Argo Server: host:port or URL (default: $ARGO_SERVER)", show_default=False)]
NamespaceOpt = Annotated[str | None, typer.Option(
    "--namespace", "-n", help="namespace (default: cluster.namespace if the config sets it, else $ARGO_NAMESPACE, else argo)",
    show_default=False)]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", help="token, with or without 'Bearer ' (default: $ARGO_TOKEN; prefer the variable: a flag shows in "
    "`ps` and shell history)", show_default=False)]
InsecureOpt = Annotated[bool, typer.Option(
    "--insecure-skip-verify", "-k", help="accept any TLS certificate (default: $ARGO_INSECURE_SKIP_VERIFY)")]
WaitOpt = Annotated[bool, typer.Option("--wait", "-w", help="follow the workflow until it finishes; exit 1 if it fails")]
PollOpt = Annotated[float, typer.Option("--poll-interval", min=0.01, help="seconds between status polls while waiting")]
WaitTimeoutOpt = Annotated[float | None, typer.Option(
    "--wait-timeout", min=0.01, help="stop following after this many seconds (the workflow keeps running)",
    show_default=False)]


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """One line on stderr for what a user can fix, never a traceback."""
    from workflows.cluster.errors import ClusterError, ParameterError
    from workflows.cluster.settings import SettingsError
    from workflows.naming import InvalidName

    try:
        yield
    except (SettingsError, ParameterError, InvalidName) as error:
        raise _fail(str(error), EXIT_BAD_INPUT) from None
    except ClusterError as error:
        raise _fail(str(error), EXIT_FAILURE) from None


def _checked_workflow_name(name: str | None) -> None:
    """A workflow name from the command line is refused here, before any connection, if a cluster could not hold it."""
    from workflows.naming import checked_object_name

    if name is not None:
        checked_object_name(name, "Workflow")


def _client(server: str | None, namespace: str | None, token: str | None, insecure: bool) -> ArgoClient:
    from workflows.cluster.client import ArgoClient

    return ArgoClient.from_env(server=server, namespace=namespace, token=token,
                               insecure_skip_verify=True if insecure else None)


def _load(pipeline: Path) -> Any:
    from workflows.cli_common import load_or_exit

    return load_or_exit(pipeline)


def _follow(client: ArgoClient, name: str, namespace: str, poll_interval: float, timeout: float | None,
            console: Console) -> None:
    """Follow a workflow to its end; exit 1 with the failed steps' messages when it fails."""
    from workflows.cluster.client import phase_of
    from workflows.cluster.view import Follower, duration_of, failure_lines

    try:
        with Follower(console) as follower:
            final = client.wait(name, namespace, poll_interval=poll_interval, timeout=timeout,
                                on_update=follower.update)
    except KeyboardInterrupt:
        typer.echo(f"stopped following {name}; it keeps running: tunebench status {name} -n {namespace}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    phase = phase_of(final)
    took = duration_of(final.get("status") or {})
    if phase == "Succeeded":
        console.print(f"{name} Succeeded" + (f" in {took}" if took else ""))
        return
    typer.echo(f"error: workflow {name} {phase}" + (f" after {took}" if took else ""), err=True)
    for line in failure_lines(final):
        typer.echo(f"  {line}", err=True)
    typer.echo(f"  rerun the failed steps, keeping the finished ones: tunebench retry {name} -n {namespace}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def submit(
    pipeline: PipelineArg,
    wait: WaitOpt = False,
    from_template: Annotated[bool, typer.Option(
        "--from-template", help="submit from the applied WorkflowTemplate (tunebench apply) instead of the manifest")] = False,
    benchmark: Annotated[bool, typer.Option(
        "--benchmark", help="submit the benchmark-only template now (what the cron runs); implies --from-template")] = False,
    parameter: Annotated[list[str] | None, typer.Option(
        "--parameter", "-p", help="override a workflow parameter, NAME=VALUE (repeatable)", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only lint the Workflow: locally, then on the server")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the workflow name")] = False,
    poll_interval: PollOpt = 10.0,
    wait_timeout: WaitTimeoutOpt = None,
    server: ServerOpt = None,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    insecure_skip_verify: InsecureOpt = False,
) -> None:
    """Submit the pipeline as a new Workflow; print its name and UI link (--wait follows it)."""
    if dry_run and (from_template or benchmark or wait):
        raise _fail("--dry-run lints the manifest; it does not combine with --from-template, --benchmark or --wait", EXIT_BAD_INPUT)
    cfg = _load(pipeline)
    if dry_run:  # the validator `tunebench lint` and `tunebench run` use, before the server's lint
        from workflows.lint import workflow_wiring_errors
        if problems := workflow_wiring_errors(cfg):
            raise _fail("the Workflow has wiring errors:\n  - " + "\n  - ".join(problems), EXIT_BAD_INPUT)
    console = _console()
    with _errors():
        from workflows.cluster.client import parse_overrides

        overrides = parse_overrides(parameter)
        client = _client(server, namespace, token, insecure_skip_verify)
        with client:
            if from_template or benchmark:
                run = client.submit_from_template(cfg, overrides, benchmark=benchmark)
            else:
                run = client.submit(cfg, overrides, dry_run=dry_run)
            for note in run.warnings:
                typer.echo(("note: " if dry_run else "warning: ") + note, err=True)
            if dry_run:
                return
            if quiet:
                typer.echo(run.name)
            else:
                console.print(f"submitted {run.name} to namespace {run.namespace}")
                console.print(run.url)
            if wait:
                _follow(client, run.name, run.namespace, poll_interval, wait_timeout, console)


def apply(
    pipeline: PipelineArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change and lint it on the server; change nothing")] = False,
    server: ServerOpt = None,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    insecure_skip_verify: InsecureOpt = False,
) -> None:
    """Create or update the WorkflowTemplates and the CronWorkflow; idempotent (created / updated / unchanged)."""
    cfg = _load(pipeline)
    console = _console()
    with _errors(), _client(server, namespace, token, insecure_skip_verify) as client:
        results = client.apply(cfg, dry_run=dry_run)
        for item in results:
            note = f"  ({item.note})" if item.note else ""
            console.print(f"{item.kind} {item.name}: {item.action}{note}", markup=False)
        if not dry_run and results:
            console.print(f"templates: {client.settings.server}/workflow-templates/{results[0].namespace}", markup=False)


def status(
    name: Annotated[str | None, typer.Argument(
        help="workflow name; omit to list recent workflows", show_default=False)] = None,
    pipeline: Annotated[Path | None, typer.Option(
        "--pipeline", help="a pipeline config: its namespace, and only its runs and cron in the list",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="workflows to list")] = 20,
    wait: WaitOpt = False,
    poll_interval: PollOpt = 10.0,
    wait_timeout: WaitTimeoutOpt = None,
    server: ServerOpt = None,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    insecure_skip_verify: InsecureOpt = False,
) -> None:
    """Show a workflow's node tree with phases and durations, or list recent workflows."""
    cfg = _load(pipeline) if pipeline is not None else None
    console = _console()
    with _errors():
        _checked_workflow_name(name)
    with _errors(), _client(server, namespace, token, insecure_skip_verify) as client:
        ns = client.namespace_for(cfg) if cfg is not None else client.settings.default_namespace
        if name is None:
            _list(client, cfg, ns, limit, console)
            return
        if wait:
            _follow(client, name, ns, poll_interval, wait_timeout, console)
            return
        from workflows.cluster.view import status_view

        workflow = client.get(name, ns)
        console.print(status_view(workflow, client.settings.workflow_url(ns, name)))


def _list(client: ArgoClient, cfg: Any, namespace: str, limit: int, console: Console) -> None:
    from workflows.cluster.view import runs_table

    runs = client.list_workflows(namespace, prefix=f"{cfg.name}-" if cfg is not None else None, limit=limit)
    if runs:
        console.print(runs_table(runs))
    else:
        console.print(f"no workflows in namespace {namespace}" + (f" for {cfg.name}" if cfg is not None else ""))
    if cfg is not None and cfg.schedule is not None:
        cron = client.get_cron(cfg)
        if cron is None:
            console.print(f"cron {rebenchmark_cron_name(cfg.name)}: not applied (tunebench apply {cfg.name})", markup=False)
        else:
            spec, state = cron.get("spec") or {}, cron.get("status") or {}
            schedules = ", ".join(spec.get("schedules") or ([spec["schedule"]] if spec.get("schedule") else []))
            line = f"cron {cron['metadata']['name']}: {schedules} {spec.get('timezone', '')}".rstrip()
            line += "  suspended" if spec.get("suspend") else ""
            if state.get("lastScheduledTime"):
                line += f"  last run {state['lastScheduledTime']}"
            console.print(line, markup=False)


def retry(
    name: Annotated[str, typer.Argument(help="the failed workflow", show_default=False)],
    wait: WaitOpt = False,
    poll_interval: PollOpt = 10.0,
    wait_timeout: WaitTimeoutOpt = None,
    server: ServerOpt = None,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    insecure_skip_verify: InsecureOpt = False,
) -> None:
    """Retry a failed workflow: succeeded steps are kept, failed ones run again (Argo's retry)."""
    console = _console()
    with _errors():
        _checked_workflow_name(name)
    with _errors(), _client(server, namespace, token, insecure_skip_verify) as client:
        run = client.retry(name)
        console.print(f"retrying {run.name} in namespace {run.namespace}: failed steps run again, finished ones are kept")
        console.print(run.url)
        if wait:
            _follow(client, run.name, run.namespace, poll_interval, wait_timeout, console)
