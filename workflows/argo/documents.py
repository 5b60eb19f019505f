"""Which Workflow an Argo file describes: a Workflow or WorkflowTemplate as it is, or the Workflow a
CronWorkflow would create; `workflowTemplateRef` resolved against the WorkflowTemplates beside it."""
from __future__ import annotations

import copy
from typing import Any

from workflows.argo.errors import ManifestError, UnsupportedFeature

RUNNABLE_KINDS = ("Workflow", "WorkflowTemplate", "CronWorkflow")


def is_argo_document(document: Any) -> bool:
    return isinstance(document, dict) and str(document.get("apiVersion", "")).startswith("argoproj.io/")


def templates_by_name(documents: list[Any]) -> dict[str, dict[str, Any]]:
    return {str((doc.get("metadata") or {}).get("name")): doc for doc in documents
            if is_argo_document(doc) and doc.get("kind") == "WorkflowTemplate"}


def runnable_workflow(documents: list[Any], source: str) -> tuple[dict[str, Any], str]:
    """The first Workflow, WorkflowTemplate or CronWorkflow of a file, as a runnable manifest; and a name."""
    for document in documents:
        if is_argo_document(document) and document.get("kind") in RUNNABLE_KINDS:
            manifest = as_workflow(document, templates_by_name(documents))
            meta = manifest.get("metadata") or {}
            return manifest, str(meta.get("name") or str(meta.get("generateName") or "workflow").rstrip("-"))
    kinds = ", ".join(sorted({str(doc.get("kind")) for doc in documents if isinstance(doc, dict)})) or "none"
    raise ManifestError(f"{source}: no Workflow, WorkflowTemplate or CronWorkflow in it (kinds: {kinds})")


def as_workflow(document: dict[str, Any], templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A Workflow or WorkflowTemplate unchanged (unless it refers to a template); a CronWorkflow's workflowSpec
    as the Workflow it creates (`generateName: <cron name>-`, its labels and annotations)."""
    kind = document.get("kind")
    metadata = dict(document.get("metadata") or {})
    spec = document.get("spec") or {}
    if kind == "CronWorkflow":
        name = metadata.get("name") or "cron"
        metadata = {key: value for key, value in metadata.items() if key in ("namespace", "labels", "annotations")}
        metadata["generateName"] = f"{name}-"
        document = {"apiVersion": document.get("apiVersion"), "kind": "Workflow", "metadata": metadata,
                    "spec": spec.get("workflowSpec") or {}}
        spec = document["spec"]
    ref = spec.get("workflowTemplateRef") if isinstance(spec, dict) else None
    if ref is None:
        return document
    where = f"{kind} '{(document.get('metadata') or {}).get('name') or metadata.get('generateName', '')}'"
    if not isinstance(ref, dict) or ref.get("clusterScope"):
        raise UnsupportedFeature("a ClusterWorkflowTemplate reference", where)
    template = templates.get(str(ref.get("name")))
    if template is None:
        raise UnsupportedFeature(f"workflowTemplateRef '{ref.get('name')}'", where,
                                 "put the WorkflowTemplate in the same file to run it locally")
    merged = {"apiVersion": document.get("apiVersion"), "kind": "Workflow", "metadata": document.get("metadata"),
              "spec": merge_template_spec(template.get("spec") or {}, spec)}
    return merged


def merge_template_spec(template_spec: dict[str, Any], workflow_spec: dict[str, Any]) -> dict[str, Any]:
    """A Workflow's spec over its WorkflowTemplate's, as Argo merges them: fields of the Workflow win,
    and its arguments override the template's parameters of the same name."""
    merged = copy.deepcopy(template_spec)
    for key, value in workflow_spec.items():
        if key == "workflowTemplateRef":
            continue
        if key == "arguments":
            params = {p.get("name"): p for p in (merged.get("arguments") or {}).get("parameters") or []}
            for param in (value or {}).get("parameters") or []:
                params[param.get("name")] = {**params.get(param.get("name"), {}), **param}
            merged["arguments"] = {**(merged.get("arguments") or {}), **(value or {}),
                                   "parameters": list(params.values())}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def with_submitted_parameters(manifest: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The manifest as `argo submit -p NAME=VALUE` makes it before it is validated: each named workflow parameter's
    value replaced. Names the workflow does not declare are left to the caller to refuse."""
    spec = manifest.get("spec")
    if not values or not isinstance(spec, dict) or not isinstance(spec.get("arguments"), dict):
        return manifest
    parameters = spec["arguments"].get("parameters")
    if not isinstance(parameters, list):
        return manifest
    submitted = copy.deepcopy(manifest)
    for param in submitted["spec"]["arguments"]["parameters"]:
        if isinstance(param, dict) and param.get("name") in values:
            param.pop("valueFrom", None)
            param["value"] = values[param["name"]]
    return submitted
