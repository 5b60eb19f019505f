"""What every `tunebench` command that reads a pipeline config shares; typer only, so `--help` stays fast.

Its own module so that `workflows.cli` (which registers the commands) and the command
modules (`workflows.cluster.commands`, ...) both import it and not each other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steps.contract import EXIT_BAD_INPUT

PipelineArg = Annotated[Path, typer.Argument(help="pipeline config (configs/pipelines/*.yaml)", show_default=False)]


def load_or_exit(pipeline: Path):  # -> PipelineConfig; the import stays lazy for a fast --help
    """Load a pipeline config, or print what is wrong with it and exit 2."""
    from workflows.config import ConfigError, load_pipeline

    try:
        return load_pipeline(pipeline)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
