"""Every step the DAG runs starts under this Python: the source compiles cleanly, modules import, `--help` works.

The images run the steps under different Pythons (the light image 3.11; Axolotl's train image and
vLLM's eval image 3.12), so `make test` runs this file under both (the Makefile's `test-py312`).
The step list comes from the rendered manifests, the single source of truth for what a pod runs.
"""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

import steps
from workflows.config import load_pipeline
from workflows.render import render

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((PROJECT_ROOT / "configs" / "pipelines").glob("*.yaml"))
# The packages the images copy in and run (containers/*.Dockerfile).
SHIPPED_PACKAGES = ("steps", "workflows")


def step_commands(node: Any) -> set[str]:
    """The `steps.<name>` modules of every `python -m steps.<name>` container command, however deeply nested.

    A resource template's manifest (the JobSet of multi-node training) is YAML inside a string.
    """
    if isinstance(node, dict):
        found = set().union(*(step_commands(value) for value in node.values())) if node else set()
        command = node.get("command")
        if isinstance(command, list) and len(command) > 2 and command[:2] == ["python", "-m"] \
                and str(command[2]).startswith("steps."):
            found.add(command[2])
        return found
    if isinstance(node, list):
        return set().union(*(step_commands(item) for item in node)) if node else set()
    if isinstance(node, str) and "\n" in node and "command" in node:
        try:
            documents = list(yaml.safe_load_all(node))
        except yaml.YAMLError:  # prose (a description), not a manifest
            return set()
        return set().union(*(step_commands(document) for document in documents))
    return set()


def rendered_step_modules() -> list[str]:
    modules: set[str] = set()
    for pipeline in PIPELINES:
        modules |= set().union(*(step_commands(document)
                                 for document in yaml.safe_load_all(render(load_pipeline(pipeline), "all"))))
    return sorted(modules)


STEP_MODULES = rendered_step_modules()


def compile_strictly(path: Path) -> None:
    """Compile as a fresh interpreter would, with every compile-time warning an error.

    Python 3.12 turns what 3.11 only deprecated (an invalid escape such as "\\d" in a plain string)
    into a SyntaxWarning; cached bytecode hides it, so compile from the source.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True)


def test_the_manifests_name_the_steps_every_image_runs():
    # train and merge-lora run in the train image (Python 3.12), eval in vLLM's (3.12), the rest in the light one.
    assert {"steps.train", "steps.merge_lora", "steps.eval_mmlu_pro", "steps.convert_dataset",
            "steps.aggregate"} <= set(STEP_MODULES)


def test_step_commands_finds_a_command_inside_a_resource_manifest():
    jobset = {"spec": {"template": {"containers": [{"command": ["python", "-m", "steps.train"]}]}}}
    template = {"templates": [{"resource": {"manifest": yaml.safe_dump(jobset)}},
                              {"container": {"command": ["python", "-m", "steps.verdict"]}},
                              {"container": {"command": ["sh", "-c", "echo"]}},
                              {"container": {"command": ["python", "-m"]}},
                              {"description": "the command:\n  it: is: prose"}]}
    assert step_commands(template) == {"steps.train", "steps.verdict"}


@pytest.mark.parametrize("package", SHIPPED_PACKAGES)
def test_the_shipped_source_compiles_without_warnings(package):
    sources = sorted((PROJECT_ROOT / package).rglob("*.py"))
    assert sources
    for source in sources:
        compile_strictly(source)


def test_compile_strictly_refuses_what_python_3_12_warns_about(tmp_path):
    source = tmp_path / "escape.py"
    source.write_text('import re\nDIGITS = re.compile("\\d+")\n', encoding="utf-8")
    with pytest.raises((SyntaxError, SyntaxWarning, DeprecationWarning)):
        compile_strictly(source)


def test_every_step_module_imports():
    # --help imports only what a command imports at the top; this imports the lazily used modules too.
    names = sorted(info.name for info in pkgutil.walk_packages(steps.__path__, "steps."))
    assert "steps.training.launch" in names and "steps.mmlu_pro.engines.hf" in names
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("module", STEP_MODULES)
def test_the_step_starts_and_prints_its_help(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"{module} --help exited {result.returncode}:\n{result.stderr}"
    assert "Usage:" in result.stdout and "--help" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
