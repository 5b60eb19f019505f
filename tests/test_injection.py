"""A hostile parameter value reaches a step as one argv element: no shell ever sees it.

Runs the rendered convert-dataset template through the local runner, with the value
substituted as Argo would, once with a probe in place of the step's module (to see the
exact argv) and once with the real step.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_runner_support import run

from workflows.config import load_pipeline
from workflows.render import manifests

ROOT = Path(__file__).resolve().parents[1]
EVIL = "x; rm -rf / $(id) `touch pwned` && echo owned > /tmp/tunebench-owned"
PROBE = "import json, sys; open('/mnt/workspace/argv.json', 'w').write(json.dumps(sys.argv[1:]))"


def convert_only(evil_field: str) -> dict:
    """The reference Workflow reduced to its convert-dataset task, with one workflow parameter made hostile."""
    workflow = manifests(load_pipeline(ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"), "workflow")[0]
    spec = workflow["spec"]
    dag = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
    dag["dag"]["tasks"] = [t for t in dag["dag"]["tasks"] if t["name"] == "convert-dataset"]
    spec["templates"] = [t for t in spec["templates"] if t["name"] in ("convert-dataset", dag["name"])]
    for param in spec["arguments"]["parameters"]:
        if param["name"] == evil_field:
            param["value"] = EVIL
    return workflow


def test_the_value_is_one_argv_element_after_substitution(tmp_path):
    workflow = convert_only("dataset")
    template = next(t for t in workflow["spec"]["templates"] if t["name"] == "convert-dataset")
    probe = copy.deepcopy(template["container"])
    probe["command"] = ["python", "-c", PROBE]
    template["container"] = probe
    result = run(workflow, tmp_path / "work")
    assert result.succeeded
    argv = json.loads((result.volume("workspace") / "argv.json").read_text())
    assert argv[argv.index("--source") + 1] == EVIL
    assert len(argv) == len(template["container"]["args"])
    assert not Path("/tmp/tunebench-owned").exists()
    assert not (tmp_path / "work" / "pwned").exists()


def test_the_real_step_treats_it_as_a_path_and_says_so(tmp_path):
    result = run(convert_only("dataset"), tmp_path / "work")
    assert not result.succeeded
    logs = "".join(p.read_text() for p in (tmp_path / "work" / "logs").glob("*.log"))
    assert f"--source {EVIL!r}: no such local file or folder, and not a hub dataset id" in logs
    assert not Path("/tmp/tunebench-owned").exists()


@pytest.fixture(autouse=True)
def _no_leftover_marker():
    Path("/tmp/tunebench-owned").unlink(missing_ok=True)
    yield
