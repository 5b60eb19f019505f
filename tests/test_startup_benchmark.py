"""benchmarks/startup.py's commands are ones today's steps accept (the benchmark stops at the first
step that fails, after minutes of preparation)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _startup_module():
    spec = importlib.util.spec_from_file_location("startup_benchmark", ROOT / "benchmarks" / "startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_it_times_names_the_tiny_model_as_baseline_and_fine_tuned(tmp_path):
    model = tmp_path / "tiny-llama"
    model.mkdir()
    args = _startup_module().plan_args(str(model), tmp_path / "plan")
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "plan" / "models.json").read_text())
    entries = plan if isinstance(plan, list) else plan["models"]
    assert sorted(entry["role"] for entry in entries) == ["baseline", "finetuned"]
