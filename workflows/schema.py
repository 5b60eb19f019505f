"""Manifest field checks: the CRD schemas (workflows/crd.py), Argo's own JSON schema (strict), Hera's models.

Argo's published schema allows unknown fields and types IntOrString and Quantity as
strings only. We close every object (a misspelled field is an error, as the API server's
strict decoding would make it) and widen those two types to what the API accepts.
Hera's models know every field too, so misspellings are caught even where the JSON
schema file is not at hand.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from workflows.crd import error_path, has_schema, shorten
from workflows.crd import validate as validate_against_crd

SCHEMA_ENV = "TUNEBENCH_ARGO_SCHEMA"
SCHEMA_FILE = "workflow-schema-v4.0.5.json"
ARGO_KINDS = ("Workflow", "WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate")
_WIDENED = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": ["string", "integer"]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": ["string", "number"]},
}


def find_schema_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The schema file: an explicit path, $TUNEBENCH_ARGO_SCHEMA, or ../shared/data/argo beside the checkout."""
    candidates = [explicit, os.environ.get(SCHEMA_ENV),
                  Path(__file__).resolve().parents[2] / "shared" / "data" / "argo" / SCHEMA_FILE]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    strict = copy.deepcopy(schema)
    for name, definition in strict["definitions"].items():
        if name in _WIDENED:
            strict["definitions"][name] = {**_WIDENED[name], "description": definition.get("description", "")}
        elif "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    return strict


@functools.lru_cache(maxsize=4)
def _validators(path: Path) -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    schema = strict_schema(json.loads(path.read_text(encoding="utf-8")))
    validators = {}
    for kind in ARGO_KINDS:
        kind_schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": schema["definitions"]}
        validators[kind] = Draft202012Validator(kind_schema)
    return validators


def validate_against_schema(manifest: dict[str, Any], schema_file: Path) -> list[str]:
    """Problems Argo's strict schema finds in one manifest (empty when valid or not an Argo kind)."""
    kind = manifest.get("kind")
    validator = _validators(schema_file).get(kind) if isinstance(kind, str) else None
    if validator is None:
        return []
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{kind} {error_path(error.absolute_path)}: {shorten(error.message)}")
    return problems


# --- Hera's generated models as a field list -------------------------------------------------

def _model_of(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('one'|'list'|'dict', model) for fields holding models, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found:
                return found
        return None
    if origin in (list, typing.List):  # noqa: UP006 - generated models use typing.List
        inner = _model_of(typing.get_args(annotation)[0])
        return ("list", inner[1]) if inner and inner[0] == "one" else None
    if origin in (dict, typing.Dict):  # noqa: UP006
        inner = _model_of(typing.get_args(annotation)[1])
        return ("dict", inner[1]) if inner and inner[0] == "one" else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if "root" in annotation.model_fields:  # RootModel wrappers hold scalars
            return None
        return ("one", annotation)
    return None


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def unknown_fields(data: Any, model: type[BaseModel], where: str = "") -> list[str]:
    """Keys in `data` that `model` (a Hera/Argo model) does not define, with their paths."""
    if not isinstance(data, dict):
        return []
    known = _fields(model)
    problems = []
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            problems.append(f"{path}: unknown field (valid here: {', '.join(sorted(known))})")
            continue
        nested = _model_of(known[key])
        if nested is None:
            continue
        shape, inner = nested
        if shape == "one":
            problems += unknown_fields(value, inner, path)
        elif shape == "list" and isinstance(value, list):
            for index, item in enumerate(value):
                problems += unknown_fields(item, inner, f"{path}[{index}]")
        elif shape == "dict" and isinstance(value, dict):
            for name, item in value.items():
                problems += unknown_fields(item, inner, f"{path}.{name}")
    return problems


def check_known_fields(manifest: dict[str, Any]) -> list[str]:
    from hera.workflows import models

    model = getattr(models, str(manifest.get("kind")), None)
    if manifest.get("kind") not in ARGO_KINDS or model is None:
        return []
    return [f"{manifest['kind']} {problem}" for problem in unknown_fields(manifest, model)]


def validate_manifest(manifest: dict[str, Any], schema_file: str | os.PathLike[str] | None = None) -> list[str]:
    """Field problems in one manifest: the shipped CRD schema of its kind (what the API server
    enforces), Hera's models, and Argo's JSON schema file too when one is found."""
    problems = validate_against_crd(manifest) if has_schema(manifest) else []
    problems += [p for p in check_known_fields(manifest) if p not in problems]
    path = find_schema_file(schema_file)
    if path is not None:
        problems += [p for p in validate_against_schema(manifest, path) if p not in problems]
    return problems
