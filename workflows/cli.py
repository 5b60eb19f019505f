"""The `tunebench` command line: thin wrappers that call one module each."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steps.contract import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK
from workflows.cli_common import PipelineArg, load_or_exit

app = typer.Typer(
    name="tunebench",
    help="Fine-tune with Axolotl and benchmark on MMLU-Pro as one Argo Workflows DAG, on a cluster or locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

@app.command()
def render(
    pipeline: PipelineArg,
    kind: Annotated[str, typer.Option(help="workflow | template | cron | all (the Argo objects) | prerequisites (RBAC, PriorityClass, existing claims; kubectl apply once) | rbac (its RBAC only)")] = "workflow",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write to FILE instead of stdout")] = None,
) -> None:
    """Print the Argo manifests of a pipeline as deterministic YAML (the same config gives the same bytes)."""
    from steps.common import StepInputError, write_text_atomic
    from workflows.render import KINDS, render as render_yaml

    if kind not in KINDS:
        typer.echo(f"error: --kind '{kind}' is not valid; choose one of: {', '.join(KINDS)}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    cfg = load_or_exit(pipeline)
    try:
        text = render_yaml(cfg, kind)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            write_text_atomic(output, text)
        except StepInputError as error:  # -o names a directory, a device, a symlink, ...
            typer.echo(f"error: -o {error}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        typer.echo(f"wrote {output}", err=True)


@app.command()
def lint(
    pipeline: Annotated[Path, typer.Argument(
        help="pipeline config (configs/pipelines/*.yaml), or an Argo Workflow / WorkflowTemplate / CronWorkflow file",
        show_default=False)],
    schema: Annotated[Path | None, typer.Option(help="Argo's JSON schema file (default: $TUNEBENCH_ARGO_SCHEMA or ../shared/data/argo)")] = None,
) -> None:
    """Check the pipeline config, its Axolotl config and every rendered manifest (or an Argo file's manifests,
    with what `tunebench run` would not emulate); exit 1 on any problem."""
    from workflows.check import check_pipeline

    report = check_pipeline(pipeline, schema)
    report.print()
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)


# --- commands owned by other modules: one registration line each --------------------
# (keep imports of heavy libraries inside the command functions, so `tunebench --help` stays fast)
from workflows.cluster import commands as _cluster  # noqa: E402  (typer only at import time)

app.command()(_cluster.submit)
app.command()(_cluster.apply)
app.command()(_cluster.status)
app.command()(_cluster.retry)
from steps.common import step_errors  # noqa: E402
from steps.estimate_memory import estimate_memory_command  # noqa: E402
app.command("estimate", help="Will a model fit for fine-tuning on N GPUs? Memory per GPU by component, and advice (exit 3 if not).")(step_errors(estimate_memory_command))
from steps.mmlu_pro.run_summary import print_run_summary  # noqa: E402
from workflows.runner.cli import run_command_with  # noqa: E402
app.command("run", help="Run a pipeline's Workflow (or an Argo Workflow file) on this machine, task by task, as Argo would (resumable).")(run_command_with(after_run=print_run_summary))
from steps.mmlu_pro.rescore import rescore_command  # noqa: E402
app.command("rescore", help="Re-score saved MMLU-Pro outputs (ours or the reference's) with --extract tiger|strict.")(rescore_command)
from steps.mmlu_pro.trend import history_command  # noqa: E402
app.command("history", help="The re-benchmark history: a line per run with its 95% interval; --plot draws the trend.")(step_errors(history_command))

if __name__ == "__main__":
    app()
