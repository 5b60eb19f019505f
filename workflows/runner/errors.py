"""Errors of the local runner itself (the workdir, its state, a stall); manifest errors are in workflows.argo.errors."""
from __future__ import annotations


class RunnerError(Exception):
    """A problem that stops `tunebench run` before or while it runs the workflow."""
