"""What the hf engine costs: batches longest prompt first within a subject (lm-evaluation-harness's
order) with records still in dataset order and resume unchanged; torch on the step's own threads;
no imports generation does not use."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.mmlu_assets import tiny_assets  # noqa: F401  (fixture)

from steps.eval_mmlu_pro import evaluate, records_path
from steps.mmlu_pro.data import load_subject
from steps.mmlu_pro.engines import GenerationSettings, load_engine
from steps.mmlu_pro.results import read_records

SETTINGS = GenerationSettings(max_new_tokens=8, max_model_len=420, batch_size=3)
SUBJECT = "computer science"
ROOT = Path(__file__).resolve().parents[1]


class RecordingFactory:
    def __init__(self):
        self.batches: list[list[int]] = []  # token counts of each call's prompts

    def __call__(self, name, model, revision, settings):
        engine = load_engine(name, model, revision, settings)
        real_generate = engine.generate

        def generate(prompts, limits):
            self.batches.append(engine.count_tokens(prompts))
            return real_generate(prompts, limits)

        engine.generate = generate
        return engine


def _run(assets, out_dir, factory, limit=0):
    return evaluate(str(assets["model"]), "baseline", "tiny", SUBJECT, str(assets["dataset"]), out_dir,
                    engine="hf", settings=SETTINGS, engine_factory=factory, limit=limit, log=lambda message: None)


@pytest.fixture(scope="module")
def whole_run(tiny_assets, tmp_path_factory):  # noqa: F811
    """An uninterrupted run of the subject: its folder and the batches the engine was given."""
    factory = RecordingFactory()
    out_dir = tmp_path_factory.mktemp("whole")
    _run(tiny_assets, out_dir, factory)
    return out_dir, factory.batches


def test_hf_batches_run_longest_prompt_first_and_records_stay_in_dataset_order(tiny_assets, whole_run):  # noqa: F811
    out_dir, batches = whole_run
    lengths = [tokens for batch in batches for tokens in batch]
    assert len(batches) > 1 and lengths == sorted(lengths, reverse=True)
    assert len(set(lengths)) > 1  # the fixture's prompts differ in length, so the order is not vacuous
    dataset_order = [str(q["question_id"]) for q in load_subject(str(tiny_assets["dataset"]), SUBJECT, None).questions]
    assert [str(r["question_id"]) for r in read_records(records_path(out_dir, SUBJECT))] == dataset_order


def test_a_resumed_run_batches_the_rest_as_the_uninterrupted_run_did(tiny_assets, whole_run, tmp_path):  # noqa: F811
    out_dir, batches = whole_run
    records = read_records(records_path(out_dir, SUBJECT))
    # The state a kill after the first batch leaves behind: that batch's records only.
    longest_first = sorted(records, key=lambda r: -r["prompt_tokens"])[: len(batches[0])]
    (tmp_path / f"{SUBJECT}.jsonl").write_text("".join(
        json.dumps(r) + "\n" for r in records if r in longest_first), encoding="utf-8")
    resumed = RecordingFactory()
    _run(tiny_assets, tmp_path, resumed)
    assert resumed.batches == batches[1:]
    assert read_records(records_path(tmp_path, SUBJECT)) == records


def test_the_hf_engine_stays_on_its_threads_and_skips_packages_generation_does_not_use(tiny_assets):  # noqa: F811
    """One interpreter as the step runs it: OMP_NUM_THREADS caps both torch pools, and neither
    sklearn nor torchao (which transformers imports whenever installed) is loaded."""
    code = ("import sys, torch; from steps.mmlu_pro.engines import GenerationSettings, load_engine; "
            f"engine = load_engine('hf', {str(tiny_assets['model'])!r}, None, GenerationSettings(batch_size=2)); "
            "engine.generate(['Question: 1+1?', 'Question: 2+2?'], [2, 2]); "
            "print(torch.get_num_threads(), torch.get_num_interop_threads(), "
            "[name for name in ('sklearn', 'torchao', 'scipy', 'pandas') if sys.modules.get(name) is not None])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "[]"]


def test_reading_the_local_dataset_does_not_import_pandas(tiny_assets):  # noqa: F811
    code = ("import sys; from steps.mmlu_pro.data import load_subject; "
            f"load_subject({str(tiny_assets['dataset'])!r}, 'math', None); print('pandas' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]  # pyarrow.dataset would import it: 0.2 s of the step's start
