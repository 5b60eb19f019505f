"""Render a pipeline config to Argo manifests: deterministic YAML, the same bytes for the same config."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import yaml

from workflows.builders import build_benchmark_template, build_cron, build_pipeline_template, build_workflow
from workflows.config import PipelineConfig
from workflows.prerequisites import prerequisite_manifests, prerequisites_header
from workflows.rbac import rbac_header, rbac_manifests

Kind = Literal["workflow", "template", "cron", "all", "rbac", "prerequisites"]
# `all` is the Argo objects (what `argo lint` and the Argo Server take); `prerequisites` is the
# Kubernetes objects the pods need (`rbac` only their RBAC), applied once with kubectl.
KINDS: tuple[str, ...] = ("workflow", "template", "cron", "all", "rbac", "prerequisites")


def _builders(cfg: PipelineConfig, kind: str) -> Sequence[Callable[[PipelineConfig], Any]]:
    if kind == "workflow":
        return [build_workflow]
    if kind == "template":
        return [build_pipeline_template, build_benchmark_template]
    if kind == "cron":
        return [build_cron]
    if kind == "all":
        return [build_workflow, build_pipeline_template, build_benchmark_template] + (
            [build_cron] if cfg.schedule is not None else []
        )
    raise ValueError(f"unknown kind '{kind}'; valid: {', '.join(KINDS)}")


def manifests(cfg: PipelineConfig, kind: str = "workflow") -> list[dict[str, Any]]:
    """The manifests of `kind` as plain dicts, in a fixed order."""
    if kind == "rbac":
        return rbac_manifests(cfg)
    if kind == "prerequisites":
        return prerequisite_manifests(cfg)
    return [builder(cfg).to_dict() for builder in _builders(cfg, kind)]


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so long descriptions stay readable in Git diffs."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                         explicit_start=True, allow_unicode=True)


def render(cfg: PipelineConfig, kind: str = "workflow") -> str:
    text = to_yaml(manifests(cfg, kind))
    header = {"rbac": rbac_header, "prerequisites": prerequisites_header}.get(kind)
    return header(cfg) + text if header else text
