"""What the hf engine costs: batches longest prompt first within a subject (lm-evaluation-harness's
order) with records still in dataset order and resume unchanged; torch on the step's own threads;
no imports generation does not use; stop-string tables built once; the loaded heap frozen."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures.mmlu_assets import tiny_assets, unfrozen_heap  # noqa: F401  (fixtures)

from steps.eval_mmlu_pro import evaluate, records_path
from steps.mmlu_pro.data import load_subject
from steps.mmlu_pro.engines import GenerationSettings, load_engine
from steps.mmlu_pro.engines.hf import stop_criteria
from steps.mmlu_pro.results import read_records

pytestmark = pytest.mark.usefixtures("unfrozen_heap")
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
    """One interpreter as the step runs it: OMP_NUM_THREADS caps both torch pools; neither sklearn,
    torchao nor scipy (which transformers imports whenever installed) is loaded, nor triton on a
    CPU; the import heap is frozen, the collector's thresholds are back, nothing frozen holds on to
    the engine (as import garbage whose frames reach the caller would), and the exit prints no
    leak report."""
    code = ("import gc, sys, weakref, torch; from steps.mmlu_pro.engines import GenerationSettings, load_engine; "
            "thresholds = gc.get_threshold(); "
            f"engine = load_engine('hf', {str(tiny_assets['model'])!r}, None, GenerationSettings(batch_size=2)); "
            "engine.generate(['Question: 1+1?', 'Question: 2+2?'], [2, 2]); "
            "print(torch.get_num_threads(), torch.get_num_interop_threads(), "
            "[name for name in ('sklearn', 'torchao', 'scipy', 'pandas', 'triton') if sys.modules.get(name) is not None], "
            "gc.get_freeze_count() > 0, gc.get_threshold() == thresholds); "
            "model = weakref.ref(engine._model); del engine; gc.collect(); print(model() is None)")
    result = _python(code, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "[]", "True", "True", "True"]
    assert "leaked" not in result.stderr


def test_one_stop_criterion_serves_every_batch_and_stops_where_stop_strings_does(tiny_assets, monkeypatch):  # noqa: F811
    import torch
    from transformers.generation.stopping_criteria import StopStringCriteria

    engine = load_engine("hf", str(tiny_assets["model"]), None, GenerationSettings(batch_size=2))
    built = []
    real_init = StopStringCriteria.__init__
    monkeypatch.setattr(StopStringCriteria, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    engine.generate([f"Question: {n}+{n}?" for n in range(5)], [4] * 5)
    assert built == []  # three batches, no vocabulary tables rebuilt

    # Stop strings the tiny model does produce (its text never says "Question:"): pieces of what it
    # generates unstopped, so each one stops some row early.
    model, tokenizer = engine._model, engine._tokenizer
    inputs = tokenizer(["Question: 1+1?", "Question: what is 2+2? Answer:", "x"], return_tensors="pt", padding=True)
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=12,
                  pad_token_id=tokenizer.pad_token_id)
    free = model.generate(**inputs, **greedy)
    texts = tokenizer.batch_decode(free[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    stops = sorted({text[start:start + 3] for text in texts for start in (2, 7)} - {""})
    criteria = {stop: stop_criteria(tokenizer, (stop,)) for stop in stops}
    expected = {stop: model.generate(**inputs, **greedy, stop_strings=[stop], tokenizer=tokenizer) for stop in stops}
    # Each criterion twice, the second time after the others ran: it carries nothing between calls.
    for stop in [*stops, stops[0]]:
        got = model.generate(**inputs, **greedy, stopping_criteria=criteria[stop], tokenizer=tokenizer)
        assert torch.equal(got, expected[stop]), stop
    stopped_early = sum(not torch.equal(expected[stop], free) for stop in stops)
    assert stopped_early >= len(stops) // 2  # the comparison is not vacuous


def test_reading_the_local_dataset_does_not_import_pandas(tiny_assets):  # noqa: F811
    code = ("import sys; from steps.mmlu_pro.data import load_subject; "
            f"load_subject({str(tiny_assets['dataset'])!r}, 'math', None); print('pandas' in sys.modules)")
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]  # pyarrow.dataset would import it: 0.2 s of the step's start


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c CODE` in a new interpreter with the project importable."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def _in_a_fresh_interpreter(body: str) -> None:
    """Run `body` (asserts about the collector's global state) alone in a new interpreter: in the test process,
    threads other tests left behind, or their frozen heap, would change the counts under it."""
    prelude = ("import gc, weakref\nfrom steps.mmlu_pro.engines.heap import frozen_imports\n"
               "class Node:\n    link = None\n")
    result = _python(prelude + textwrap.dedent(body))
    assert result.returncode == 0, result.stderr


def test_imports_run_without_full_collections_then_their_heap_is_frozen_but_not_their_garbage():
    _in_a_fresh_interpreter("""
        thresholds, before = gc.get_threshold(), gc.get_freeze_count()  # Python 3.12 starts with some frozen
        kept = Node()
        kept.link = kept
        with frozen_imports():
            assert gc.get_threshold()[:2] == thresholds[:2] and gc.get_threshold()[2] > 10**9
            cycle = Node()
            cycle.link = cycle
            garbage = weakref.ref(cycle)
            del cycle
        assert gc.get_threshold() == thresholds and gc.get_freeze_count() > before and garbage() is None
        assert all(item is not kept for item in gc.get_objects())  # frozen: no collection walks it
    """)


def test_the_heap_is_frozen_once_and_not_when_the_imports_fail():
    _in_a_fresh_interpreter("""
        thresholds, before = gc.get_threshold(), gc.get_freeze_count()  # Python 3.12 starts with some frozen
        try:
            with frozen_imports():
                raise ImportError("no module named torch")
        except ImportError:
            pass
        assert gc.get_threshold() == thresholds and gc.get_freeze_count() == before
        with frozen_imports():
            pass
        frozen = gc.get_freeze_count()
        assert frozen > before
        later = Node()
        later.link = later
        with frozen_imports():
            pass
        assert gc.get_freeze_count() == frozen and any(item is later for item in gc.get_objects())
    """)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton (a nanobind extension) is not installed")
def test_a_frozen_heap_with_triton_loaded_exits_without_a_leak_report():
    code = "from steps.mmlu_pro.engines.heap import frozen_imports\nwith frozen_imports(): import triton"
    result = _python(code)
    assert result.returncode == 0 and "leaked" not in result.stderr, result.stderr
