"""The local runner: `tunebench run` interprets a rendered Argo Workflow on this machine.

    from workflows.runner import RunOptions, run_workflow
    result = run_workflow(manifest_dict, RunOptions(workdir=Path(".demo")))

See docs/local-runner.md for what it emulates and what it does not.
"""
from __future__ import annotations

from workflows.argo.errors import ManifestError, UnresolvedReference, UnsupportedFeature
from workflows.argo.validate import load_workflow
from workflows.runner.engine import RunOptions, run_workflow
from workflows.runner.errors import RunnerError
from workflows.runner.nodes import RunResult

__all__ = ["RunOptions", "RunResult", "run_workflow", "load_workflow", "ManifestError", "RunnerError",
           "UnresolvedReference", "UnsupportedFeature"]
