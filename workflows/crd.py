"""Validate a manifest against the CustomResourceDefinition of its kind, as strictly as the API server.

The schemas ship inside the project (`workflows/crds/*.json.gz`), generated from the CRDs a
cluster installs (Argo Workflows v4.1.2's workflows, workflowtemplates and cronworkflows,
JobSet v0.12.0's jobsets; `python -m workflows.crd PATH_TO_CRDS` regenerates them, `make crds`
from ../shared/data/crds). `validate(manifest)` picks the schema by apiVersion and kind.

Strict like `argo lint --strict` and the API server's field validation: every object schema
that lists `properties` forbids other fields (unless it has `additionalProperties` or
`x-kubernetes-preserve-unknown-fields`); `x-kubernetes-int-or-string` means integer or string;
patterns stay, so a `{{...}}` placeholder in a resource quantity is refused, as the controller
refuses it. CEL rules (`x-kubernetes-validations`) are not expressible in JSON Schema and are
not checked. Descriptions are dropped, so the shipped files stay small.
"""
from __future__ import annotations

import functools
import gzip
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from steps.contract import EXIT_BAD_INPUT

SCHEMA_DIR = Path(__file__).resolve().parent / "crds"
_DROPPED = {"description", "x-kubernetes-validations", "example"}


class NoSchema(LookupError):
    """No shipped CRD schema for this apiVersion and kind."""


def strict(schema: Any) -> Any:
    """The openAPIV3Schema as closed JSON Schema (see the module docstring), without descriptions."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items() if key not in _DROPPED and key != "properties"}
    if "properties" in schema:  # its keys are field names (one is `description`), not keywords
        result["properties"] = {name: strict(value) for name, value in schema["properties"].items()}
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("anyOf", None)
        result["type"] = ["integer", "string"]
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result["additionalProperties"] = False
    return result


def schemas_from_crd(crd: dict[str, Any]) -> list[dict[str, Any]]:
    """One compact entry per served version: {"apiVersion", "kind", "schema"}."""
    spec = crd["spec"]
    return [{"apiVersion": f"{spec['group']}/{version['name']}", "kind": spec["names"]["kind"],
             "schema": strict(version["schema"]["openAPIV3Schema"])}
            for version in spec["versions"] if version.get("served", True)]


def _file_name(entry: dict[str, Any]) -> str:
    group_version = entry["apiVersion"].replace("/", "_")
    return f"{entry['kind'].lower()}.{group_version}.json.gz"


def generate(crd_files: Iterable[Path], out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write one gzipped JSON schema per kind and version; the same CRDs give the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for crd_file in sorted(crd_files):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: these files are 40,000+ lines
        for document in yaml.load_all(crd_file.read_text(encoding="utf-8"), Loader=loader):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            for entry in schemas_from_crd(document):
                entry["source"] = crd_file.name
                path = out_dir / _file_name(entry)
                text = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
                path.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
                written.append(path)
    return written


@functools.cache
def _validator(api_version: str, kind: str, schema_dir: Path) -> Any:
    from jsonschema import Draft202012Validator

    path = schema_dir / _file_name({"apiVersion": api_version, "kind": kind})
    if not path.is_file():
        known = ", ".join(sorted(p.name.removesuffix(".json.gz") for p in schema_dir.glob("*.json.gz")))
        raise NoSchema(f"no CRD schema for apiVersion {api_version!r} kind {kind!r} (shipped: {known or 'none'})")
    entry = json.loads(gzip.decompress(path.read_bytes()))
    return Draft202012Validator(entry["schema"])


def error_path(parts: Iterable[Any]) -> str:
    """A jsonschema error's path as `spec.templates[2].container`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"


def shorten(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def has_schema(manifest: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> bool:
    try:
        _validator(str(manifest.get("apiVersion")), str(manifest.get("kind")), schema_dir)
    except NoSchema:
        return False
    return True


def validate(manifest: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Problems the CRD's strict schema finds in `manifest`, as 'Kind path: message'; raises NoSchema."""
    kind = str(manifest.get("kind"))
    validator = _validator(str(manifest.get("apiVersion")), kind, schema_dir)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{kind} {error_path(error.absolute_path)}: {shorten(error.message)}" for error in errors]


def main(argv: list[str] | None = None) -> None:
    """`python -m workflows.crd CRD_DIR [OUT_DIR]`: regenerate the shipped schemas from CRD YAML files."""
    args = sys.argv[1:] if argv is None else argv
    if not args or not Path(args[0]).is_dir():
        print("usage: python -m workflows.crd CRD_DIR [OUT_DIR]  (CRD_DIR holds the CRDs' YAML files)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)
    out_dir = Path(args[1]) if len(args) > 1 else SCHEMA_DIR
    for path in generate(Path(args[0]).glob("*.yaml"), out_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
