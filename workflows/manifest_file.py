"""A file the user names to `tunebench run` or `tunebench lint`: a pipeline config, or Argo manifests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workflows.argo.documents import is_argo_document, runnable_workflow
from workflows.config import ConfigError, parse_pipeline, read_config_documents


def read_documents(path: Path) -> list[Any]:
    """The file's YAML documents (empty ones dropped), read within the config reader's bounds."""
    return [doc for doc in read_config_documents(path) if doc is not None]


def is_argo_file(documents: list[Any]) -> bool:
    return bool(documents) and is_argo_document(documents[0])


def load_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """A pipeline config rendered to its Workflow, or the Workflow an Argo file describes; and a name.
    Raises ConfigError (the file) or ManifestError (an Argo file with nothing runnable)."""
    from workflows.render import manifests

    documents = read_documents(path)
    if is_argo_file(documents):
        return runnable_workflow(documents, str(path))
    if len(documents) != 1:
        raise ConfigError(f"{path}: expected one pipeline config document, found {len(documents)}")
    cfg = parse_pipeline(documents[0], str(path))
    return manifests(cfg, "workflow")[0], cfg.name
