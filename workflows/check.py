"""`tunebench lint`: every check a pipeline gets before it reaches a cluster, as one report."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

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
    from steps.training.axolotl_config import (PipelineSettings, TrainPaths, assumed_capabilities,
                                               build_final_config, load_yaml_config, unknown_keys,
                                               validate_config)

    placeholder_run = Path("/workspace/runs/lint")
    try:
        final = build_final_config(
            load_yaml_config(cfg.train.axolotl_config, what="train.axolotl_config"), dict(cfg.train.overrides),
            PipelineSettings(base_model=cfg.model.id, base_model_revision=cfg.model.revision,
                             dataset=placeholder_run / "data" / "train.parquet",
                             paths=TrainPaths(placeholder_run / "train"), gpus=cfg.train.gpus,
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


def _manifest_sections(cfg: PipelineConfig, schema: Path | None) -> list[Section]:
    from workflows.jobset import resource_manifest_problems
    from workflows.lint import lint_manifest
    from workflows.render import manifests
    from workflows.schema import find_schema_file, validate_manifest

    documents = manifests(cfg, "all")
    template_names = {d["metadata"]["name"] for d in documents if d["kind"] == "WorkflowTemplate"}
    schema_file = find_schema_file(schema)
    note = "Argo v4.1.2 CRD schemas, strict" + (f", and {schema_file.name}" if schema_file else "")
    sections = []
    for document in documents:
        name = document["metadata"].get("name") or document["metadata"].get("generateName", "")
        section = Section(f"{document['kind']} {name}", note=note)
        section.problems = validate_manifest(document, schema_file) + lint_manifest(document, template_names) \
            + resource_manifest_problems(document)
        sections.append(section)
    return sections


def check_pipeline(path: str | os.PathLike[str], schema: Path | None = None) -> Report:
    report = Report()
    config_section = Section(f"pipeline config {path}")
    report.sections.append(config_section)
    try:
        cfg = load_pipeline(path)
    except ConfigError as error:
        config_section.problems = [line.strip() for line in str(error).splitlines()[1:]] or [str(error)]
        return report
    report.sections.append(_axolotl_section(cfg))
    report.sections += _manifest_sections(cfg, schema)
    return report
