"""The run's verdict on its MMLU-Pro scores, the DAG's last task: exit 4 on a recorded regression.

In the DAG, aggregate runs with `--on-regression record`: it writes the scores and any
regression into summary.json and succeeds, so that publish-scores puts the new scores on the
model card; then this task fails the workflow when aggregate recorded a regression. It judges
only the summary of that aggregate invocation (`--summary-id`, aggregate's output parameter):
a stale or foreign summary.json is refused (exit 2), never judged.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import EXIT_REGRESSION, StepInputError, step_errors, step_main
from steps.mmlu_pro.summary_file import read_summary, regression_message


def recorded_regressions(summary_path: Path, summary_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary aggregate wrote under `summary_id`, and the regressions it recorded."""
    if not summary_id.strip():
        raise StepInputError("--summary-id is empty; pass aggregate's summary-id output parameter")
    summary = read_summary(summary_path, summary_id)
    regressions = summary.get("regressions")
    if not isinstance(regressions, list):
        raise StepInputError(f"--summary {summary_path} has no list of regressions; was it written by aggregate?")
    return summary, regressions


@step_errors
def verdict_command(
    summary: Annotated[Path, typer.Option(help="RUN/summary/summary.json written by aggregate.")],
    summary_id: Annotated[str, typer.Option(help="The id aggregate gave that summary (its summary-id output).")],
) -> None:
    """Exit 4 when aggregate recorded a regression in the summary it wrote; 0 when it recorded none."""
    written, regressions = recorded_regressions(summary, summary_id)
    if regressions:
        print(f"error: {regression_message(written)} (the scores are in {summary})", file=sys.stderr)
        raise SystemExit(EXIT_REGRESSION)
    print(f"no regression in run {written.get('run_id')} (summary {summary_id})")


def main() -> None:
    step_main(verdict_command)


if __name__ == "__main__":
    main()
