"""`tunebench lint`'s manifest checks: the DAG through the one validator (workflows.argo.validate) that
`tunebench run` and `submit --dry-run` use too, plus what only makes sense across documents.

`lint_manifest` returns the wiring errors (and the likely mistakes Argo silently ignores) of one
manifest as sentences naming the template, the task and the reference; features the local runner
does not emulate are not problems for a cluster, so `local_run_notes` reports them apart.
"""
from __future__ import annotations

from typing import Any

from workflows.argo.documents import as_workflow
from workflows.argo.errors import ManifestError
from workflows.argo.validate import Validation, validate


def _validation(manifest: dict[str, Any], templates: dict[str, dict[str, Any]] | None = None) -> Validation | None:
    """The validator's verdict on a Workflow, WorkflowTemplate or CronWorkflow's workflowSpec; None when the
    spec only refers to a template that is not at hand (checked by `_template_reference`)."""
    try:
        workflow = as_workflow(manifest, templates or {})
    except ManifestError:
        return None
    return validate(workflow)


def _template_reference(manifest: dict[str, Any], known_templates: set[str] | None) -> list[str]:
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    ref = spec.get("workflowTemplateRef") or {}
    if ref and known_templates is not None and ref.get("name") not in known_templates:
        return [f"{manifest.get('kind')}: workflowTemplateRef '{ref.get('name')}' is not among the rendered "
                f"templates ({', '.join(sorted(known_templates))})"]
    return []


def lint_manifest(manifest: dict[str, Any], known_templates: set[str] | None = None,
                  templates: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Wiring errors of one Argo manifest; `known_templates` are the WorkflowTemplate names rendered alongside,
    `templates` those documents when they are at hand (a reference to one is then checked through it)."""
    problems = _template_reference(manifest, known_templates)
    validation = _validation(manifest, templates)
    if validation is not None:
        problems += validation.wiring_errors + validation.warnings
    return problems


def local_run_notes(manifest: dict[str, Any], templates: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """What `tunebench run` would refuse in this manifest (valid Argo it does not emulate)."""
    try:
        workflow = as_workflow(manifest, templates or {})
    except ManifestError as error:
        return [str(error)]
    return validate(workflow).not_emulated


def workflow_wiring_errors(cfg: Any) -> list[str]:
    """The wiring errors of a pipeline config's Workflow (what `submit --dry-run` checks before the server)."""
    from workflows.render import manifests

    return lint_manifest(manifests(cfg, "workflow")[0])
