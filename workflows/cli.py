"""The `tunebench` command line: thin wrappers that call one module each."""
from __future__ import annotations

import typer

app = typer.Typer(
    name="tunebench",
    help="Fine-tune with Axolotl and benchmark on MMLU-Pro as one Argo Workflows DAG, on a cluster or locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# --- commands owned by other modules: one registration line each --------------------
# (keep imports of heavy libraries inside the command functions, so `tunebench --help` stays fast)

if __name__ == "__main__":
    app()
