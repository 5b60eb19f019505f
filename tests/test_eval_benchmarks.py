"""The eval benchmarks run against today's code: benchmarks/startup.py's commands are ones the steps
accept (it stops at the first that fails, after minutes of preparation), and
benchmarks/stop_criteria.py times the criterion the hf engine builds."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_it_times_names_the_tiny_model_as_baseline_and_fine_tuned(tmp_path):
    model = tmp_path / "tiny-llama"
    model.mkdir()
    args = _benchmark("startup").plan_args(str(model), tmp_path / "plan")
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "plan" / "models.json").read_text())
    entries = plan if isinstance(plan, list) else plan["models"]
    assert sorted(entry["role"] for entry in entries) == ["baseline", "finetuned"]


def test_the_stop_criterion_benchmark_builds_the_engines_criterion_on_a_vocabulary_of_the_size_asked(capsys):
    benchmark = _benchmark("stop_criteria")
    tokenizer = benchmark.synthetic_tokenizer(300)
    assert len(tokenizer.get_vocab()) == 300
    assert tokenizer.decode(tokenizer("Question: 1+1?")["input_ids"]) == "Question: 1+1?"
    benchmark.VOCABULARY_SIZES = (300,)
    assert benchmark.main(["--batches", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "300"
