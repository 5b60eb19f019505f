"""`tunebench run PIPELINE.yaml`: render the Workflow and run it here, task by task, as Argo would."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.contract import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED


def default_parallelism() -> int:
    """Pods at once when neither the manifest nor --parallelism says: the cores, at least 2, at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the run as Ctrl-C does: the tasks' processes are ended and the state saved."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _parameters(values: list[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"'{value}' is not NAME=VALUE", param_hint="--param")
        parameters[name.strip()] = text
    return parameters


AfterRun = Callable[[Path, str, Any], object]  # (workdir, run name, console): what to print after the run


def run_command_with(after_run: AfterRun | None = None) -> Callable[..., None]:
    """The `tunebench run` command; `after_run` adds what a particular pipeline prints at the end (the
    generic runner knows nothing of MMLU-Pro: workflows/cli.py passes steps.mmlu_pro's summary)."""
    def run_command(
        pipeline: Annotated[Path, typer.Argument(help="pipeline config, or an Argo Workflow, WorkflowTemplate or CronWorkflow file",
                                                 exists=True, dir_okay=False)],
        workdir: Annotated[Path | None, typer.Option("--workdir", "-w",
                           help="folder for volumes, logs, state.json and timeline.json; rerun with the same one "
                                "to resume", show_default=".tunebench/<pipeline name>")] = None,
        parallelism: Annotated[int | None, typer.Option("--parallelism", "-j", min=1,
                               help="most tasks running at once (the manifest's own limits apply too) "
                                    "", show_default="the CPU count, 2 to 8")] = None,
        param: Annotated[list[str] | None, typer.Option("--param", "-p",
                         help="override a workflow parameter, NAME=VALUE (repeatable), as `argo submit -p`")] = None,
        resume: Annotated[bool, typer.Option("--resume/--no-resume",
                          help="skip tasks that succeeded in an earlier run in this workdir with the same inputs")] = True,
        new_run: Annotated[bool, typer.Option("--new-run",
                           help="start a new run (a new name from metadata.generateName) in a workdir that holds "
                                "one, on the same volumes, instead of resuming it; the earlier run's files stay")] = False,
        backoff_scale: Annotated[float | None, typer.Option("--backoff-scale", min=0.0,
                                 help="multiply retry backoff waits (0 retries at once) "
                                      "", show_default="$TUNEBENCH_BACKOFF_SCALE or 1")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the result")] = False,
    ) -> None:
        """Run the pipeline's Workflow on this machine: every task a local process, every volume a folder."""
        from rich.console import Console

        from workflows.argo.errors import ArgoError
        from workflows.config import ConfigError
        from workflows.manifest_file import load_manifest
        from workflows.runner.engine import Engine, RunOptions
        from workflows.runner.errors import RunnerError
        from workflows.runner.progress import ConsoleReporter

        console = Console(emoji=False, highlight=False)
        if not console.is_terminal:  # a log file or CI: long lines rather than wrapped ones
            console = Console(emoji=False, highlight=False, width=max(console.width, 160))
        errors = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)  # one line per error
        try:
            manifest, name = load_manifest(pipeline)
        except (ConfigError, ArgoError) as error:
            errors.print(f"error: {error}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if backoff_scale is None:
            try:
                backoff_scale = float(os.environ.get("TUNEBENCH_BACKOFF_SCALE", "1"))
            except ValueError:
                errors.print("error: TUNEBENCH_BACKOFF_SCALE is not a number", markup=False)
                raise typer.Exit(EXIT_BAD_INPUT) from None
        options = RunOptions(
            workdir=workdir or Path(".tunebench") / name,
            parallelism=parallelism or default_parallelism(),
            parameters=_parameters(param or []),
            resume=resume,
            new_run=new_run,
            backoff_scale=backoff_scale,
        )
        reporter = ConsoleReporter(console, quiet=quiet)
        try:
            with _terminate_as_interrupt():
                engine = Engine(manifest, options, reporter)
                result = engine.run()
        except (RunnerError, ArgoError) as error:
            reporter.close()
            errors.print(f"error: {error}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        finally:
            reporter.close()
        if after_run is not None:
            after_run(result.workdir, result.workflow_name, console)
        if result.interrupted:
            console.print(f"interrupted; run the same command again to resume from {result.workdir}", markup=False)
            raise typer.Exit(EXIT_INTERRUPTED)
        if not result.succeeded:
            if quiet:
                errors.print(f"workflow {result.workflow_name} {result.phase}: {result.message}", markup=False)
            console.print(f"fix the cause and run the same command again: finished tasks are skipped "
                          f"(workdir {result.workdir})", markup=False)
            raise typer.Exit(EXIT_FAILURE)

    return run_command
