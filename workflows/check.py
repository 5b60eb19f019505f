"""`tunebench lint`: every check a pipeline (or a file of Argo manifests) gets before it reaches a cluster, as one report."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from steps.contract import WORKSPACE_MOUNT, run_folder
from workflows.config import ConfigError, PipelineConfig, load_pipeline


@dataclass
class Section:
    title: str
    problems: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Report:
    sections: list[Section] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not section.problems for section in self.sections)

    def print(self, console: Console | None = None) -> None:
        console = console or Console(highlight=False, soft_wrap=True)
        for section in self.sections:
            mark = "[green]ok[/]  " if not section.problems else "[red]FAIL[/]"
            note = f" [dim]({section.note})[/]" if section.note else ""
            console.print(f"{mark} {section.title}{note}")
            for problem in section.problems:
                console.print(f"       - {problem}", markup=False)
        verdict = "[green]lint passed[/]" if self.ok else f"[red]lint failed: {self.problem_count} problem(s)[/]"
        console.print(verdict)

    @property
    def problem_count(self) -> int:
        return sum(len(section.problems) for section in self.sections)


def _axolotl_section(cfg: PipelineConfig) -> Section:
    """The final Axolotl config the train step would build, through Axolotl's own schema."""
    section = Section(f"Axolotl config {cfg.train.axolotl_config}")
    try:
        import axolotl  # noqa: F401 - only present where training dependencies are installed
    except ImportError:
        section.note = "Axolotl is not installed here: schema not checked (the train step validates it again)"
        return section
    from steps.common import StepInputError
    from steps.training.axolotl_config import (
        PipelineSettings,
        TrainPaths,
        assumed_capabilities,
        build_final_config,
        load_yaml_config,
        unknown_keys,
        validate_config,
    )

    placeholder_run = run_folder(WORKSPACE_MOUNT, "lint")
    try:
        final = build_final_config(
            load_yaml_config(cfg.train.axolotl_config, what="train.axolotl_config"), dict(cfg.train.overrides),
            PipelineSettings(base_model=cfg.model.id, base_model_revision=cfg.model.revision,
                             dataset=Path(placeholder_run.train_parquet),
                             paths=TrainPaths(Path(placeholder_run.train)), gpus=cfg.train.gpus,
                             nodes=cfg.train.nodes))
    except StepInputError as error:
        section.problems.append(str(error))
        return section
    section.problems += [f"unknown Axolotl key '{key}' (Axolotl would ignore it silently)" for key in unknown_keys(final)]
    try:
        validate_config(final, *assumed_capabilities(cfg.train.world_size))
    except StepInputError as error:
        section.problems.append(str(error))
    section.note = f"Axolotl's schema, {cfg.train.world_size} GPU(s) assumed Ampere or newer"
    return section


def _manifest_sections(documents: list[dict[str, Any]], schema: Path | None, local_notes: bool) -> list[Section]:
    """Each manifest through Argo's schema and the DAG validator; `local_notes` adds what `tunebench run`
    would not emulate (for a plain Argo file, whose users may want to run it locally)."""
    from workflows.argo.documents import templates_by_name
    from workflows.jobset import resource_manifest_problems
    from workflows.lint import lint_manifest, local_run_notes
    from workflows.schema import find_schema_file, validate_manifest

    templates = templates_by_name(documents)
    schema_file = find_schema_file(schema)
    note = "Argo v4.1.2 CRD schemas, strict" + (f", and {schema_file.name}" if schema_file else "")
    sections = []
    for document in documents:
        metadata = document.get("metadata") or {}
        name = metadata.get("name") or metadata.get("generateName", "")
        section = Section(f"{document.get('kind')} {name}", note=note)
        # In a plain Argo file, a workflowTemplateRef may name a WorkflowTemplate that lives on the cluster (Argo's
        # examples/dag-inline-cronworkflow.yaml); rendered manifests must refer to the templates rendered with them.
        known = None if local_notes else set(templates)
        section.problems = (validate_manifest(document, schema_file)
                            + lint_manifest(document, known, templates)
                            + resource_manifest_problems(document))
        if local_notes:
            not_emulated = local_run_notes(document, templates)
            if not_emulated:
                section.note += "; tunebench run would refuse: " + "; ".join(not_emulated)
        sections.append(section)
    return sections


def check_pipeline(path: str | os.PathLike[str], schema: Path | None = None) -> Report:
    """A pipeline config, or a file of Argo manifests (Workflow, WorkflowTemplate, CronWorkflow)."""
    from workflows.argo.documents import is_argo_document
    from workflows.manifest_file import is_argo_file, read_documents

    try:
        documents = read_documents(Path(path))
    except ConfigError:
        documents = []  # load_pipeline below reports it
    report = Report()
    if is_argo_file(documents):
        argo = [doc for doc in documents if is_argo_document(doc)]
        report.sections += _manifest_sections(argo, schema, local_notes=True)
        return report
    config_section = Section(f"pipeline config {path}")
    report.sections.append(config_section)
    try:
        cfg = load_pipeline(Path(path))
    except ConfigError as error:
        config_section.problems = [line.strip() for line in str(error).splitlines()[1:]] or [str(error)]
        return report
    report.sections.append(_axolotl_section(cfg))
    from workflows.render import manifests

    report.sections += _manifest_sections(manifests(cfg, "all"), schema, local_notes=False)
    return report
