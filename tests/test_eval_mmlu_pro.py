"""steps.eval_mmlu_pro end to end with the `hf` engine on a tiny model: records, summary, resume
after a kill, settings changes, errors; and the vLLM adapter over the same prompt/extraction code
and the same chunked save-and-resume loop."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from fixtures.mmlu_assets import tiny_assets, unfrozen_heap  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from steps.common import StepInputError
from steps.eval_mmlu_pro import eval_mmlu_pro_command, evaluate, records_path, summary_path
from steps.mmlu_pro.engines import GenerationSettings, load_engine
from steps.mmlu_pro.engines.base import resolve_model, token_counter
from steps.mmlu_pro.extract import extract_answer
from steps.mmlu_pro.results import read_records

pytestmark = pytest.mark.usefixtures("unfrozen_heap")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = GenerationSettings(max_new_tokens=12, max_model_len=420, batch_size=3)
SUBJECT = "computer science"


class CountingFactory:
    """Loads the real engine and counts the prompts it is asked to generate for."""

    def __init__(self):
        self.prompts: list[str] = []
        self.loads = 0

    def __call__(self, name, model, revision, settings):
        self.loads += 1
        engine = load_engine(name, model, revision, settings)
        real_generate = engine.generate

        def generate(prompts, limits):
            self.prompts += prompts
            return real_generate(prompts, limits)

        engine.generate = generate
        return engine


def _run(assets, out_dir, settings=SETTINGS, **kwargs):
    options = dict(engine="hf", settings=settings, log=lambda message: None)
    options.update(kwargs)
    return evaluate(str(assets["model"]), "baseline", "tiny", SUBJECT, str(assets["dataset"]), out_dir, **options)


@pytest.fixture(scope="module")
def reference_run(tiny_assets, tmp_path_factory):  # noqa: F811
    """An uninterrupted run, to compare resumed and repeated runs with."""
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    summary = _run(tiny_assets, out_dir)
    return out_dir, summary, read_records(records_path(out_dir, SUBJECT))


def test_hf_engine_writes_a_record_per_question_and_a_summary(tiny_assets, reference_run):  # noqa: F811
    out_dir, summary, records = reference_run
    assert len(records) == summary["n"] == summary["n_questions"] == 8 and summary["complete"]
    budget = SETTINGS.max_model_len - SETTINGS.max_new_tokens
    for record in records:
        assert {"question_id", "answer", "pred", "method", "k", "prompt_tokens", "generated_text",
                "hit_token_limit"} <= record.keys()
        assert record["generated_text"] and 0 <= record["k"] <= 5
        assert record["prompt_tokens"] < budget
        found = extract_answer(record["generated_text"], "tiger", record["question_id"], record["n_options"])
        assert (record["pred"], record["method"]) == (found.pred, found.method)
        assert record["correct"] == (record["pred"] == record["answer"])
    # The budget is tight enough that some examples had to go, and k says how many stayed.
    assert any(record["k"] < 5 for record in records)
    assert summary["correct"] == sum(r["correct"] for r in records)
    assert summary["accuracy"] == pytest.approx(summary["correct"] / summary["n"])
    assert sum(summary["methods"].values()) == summary["n"]
    assert sum(summary["k_distribution"].values()) == summary["n"]
    assert summary["truncated"] == sum(r["hit_token_limit"] for r in records)
    assert summary["engine"] == "hf" and summary["model_revision"].startswith("sha256:")
    assert summary["dataset_revision"].startswith("sha256:") and len(summary["settings_hash"]) == 12
    assert json.loads(summary_path(out_dir, SUBJECT).read_text()) == summary


def test_prompt_tokens_count_what_the_model_is_fed(tiny_assets):  # noqa: F811
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])
    texts = ["Question:\nWhat is 2 + 2?\nAnswer: Let's think step by step.", "é ü 漢字 The answer is (J)."]
    assert token_counter(tokenizer)(texts) == [len(tokenizer(text)["input_ids"]) for text in texts]
    assert tokenizer(texts[0])["input_ids"][0] == tokenizer.bos_token_id


def test_prompts_are_counted_alike_before_and_after_a_padded_batch(tiny_assets):  # noqa: F811
    # The hf engine's batches are tokenized with padding=True, which the Rust tokenizer keeps as its state.
    engine = load_engine("hf", str(tiny_assets["model"]), None, GenerationSettings(batch_size=2))
    texts = ["Question: 1+1?", "Question: what is the sum of two and two, in words?"]
    before = engine.count_tokens(texts)
    engine.generate(texts, [2, 2])
    assert engine.count_tokens(texts) == before and before[0] < before[1]


def test_a_run_killed_midway_resumes_with_only_the_rest_and_equals_an_uninterrupted_run(
        tiny_assets, reference_run, tmp_path):  # noqa: F811
    out_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "steps.eval_mmlu_pro", "--model", str(tiny_assets["model"]),
               "--role", "baseline", "--label", "tiny", "--subject", SUBJECT, "--dataset", str(tiny_assets["dataset"]),
               "--engine", "hf", "--out-dir", str(out_dir), "--max-new-tokens", str(SETTINGS.max_new_tokens),
               "--max-model-len", str(SETTINGS.max_model_len), "--batch-size", str(SETTINGS.batch_size)]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    records_file = records_path(out_dir, SUBJECT)
    deadline = time.monotonic() + 120
    while not records_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert records_file.exists(), process.stderr.read().decode()
    answered_before = len(read_records(records_file))  # the file is whole: it is only ever renamed into place
    assert answered_before >= SETTINGS.batch_size

    factory = CountingFactory()
    summary = _run(tiny_assets, out_dir, engine_factory=factory)

    assert len(factory.prompts) == 8 - answered_before
    _, expected_summary, expected_records = reference_run
    assert read_records(records_file) == expected_records
    assert {k: v for k, v in summary.items() if k != "limit"} == {k: v for k, v in expected_summary.items() if k != "limit"}


def test_a_finished_task_reruns_without_loading_the_model(tiny_assets, reference_run, tmp_path):  # noqa: F811
    out_dir = tmp_path / "again"
    _run(tiny_assets, out_dir)

    def no_engine(*args):
        raise AssertionError("the model was loaded although every question was answered")

    strict = _run(tiny_assets, out_dir, engine_factory=no_engine, extract="strict")
    records = read_records(records_path(out_dir, SUBJECT))
    assert strict["extract"] == "strict" and set(r["method"] for r in records) <= {"l1", "none"}
    assert strict["settings_hash"] != reference_run[1]["settings_hash"]
    assert [r["generated_text"] for r in records] == [r["generated_text"] for r in reference_run[2]]


def test_changed_generation_settings_redo_the_answers_and_limit_takes_the_first_questions(tiny_assets, tmp_path):  # noqa: F811
    out_dir = tmp_path / "changed"
    _run(tiny_assets, out_dir, limit=2)
    factory = CountingFactory()
    messages = []
    summary = _run(tiny_assets, out_dir, settings=GenerationSettings(max_new_tokens=6, max_model_len=420, batch_size=3),
                   engine_factory=factory, log=messages.append, limit=3)
    assert len(factory.prompts) == 3
    assert any("made with other settings" in message for message in messages)
    assert summary["n"] == 3 and summary["n_questions"] == 8 and not summary["complete"] and summary["limit"] == 3


def test_an_over_long_question_is_answered_with_what_the_context_has_left(tiny_assets, tmp_path):  # noqa: F811
    # A budget below the bare question: no examples, a shortened generation, and it is flagged.
    summary = _run(tiny_assets, tmp_path, settings=GenerationSettings(max_new_tokens=60, max_model_len=100),
                   limit=2)
    records = read_records(records_path(tmp_path, SUBJECT))
    assert summary["over_budget"] == 2 and all(r["k"] == 0 and r["over_budget"] for r in records)


def test_a_lora_adapter_folder_is_evaluated_over_its_base_model(tiny_assets, tmp_path):  # noqa: F811
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_assets["model"])
    adapter_dir = tmp_path / "adapter"
    get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter_dir)
    assert resolve_model(str(adapter_dir)).base == str(tiny_assets["model"])

    adapted = evaluate(str(adapter_dir), "finetuned", "tiny-lora", SUBJECT, str(tiny_assets["dataset"]),
                       tmp_path / "adapted", engine="hf", settings=SETTINGS, limit=2, log=lambda m: None)
    plain = _run(tiny_assets, tmp_path / "plain", limit=2)
    # A fresh LoRA adapter is the identity (B = 0): the same answers as the base model.
    assert ([r["generated_text"] for r in read_records(records_path(tmp_path / "adapted", SUBJECT))]
            == [r["generated_text"] for r in read_records(records_path(tmp_path / "plain", SUBJECT))])
    assert adapted["model_revision"] != plain["model_revision"]


# --- the command line: errors a user can act on ----------------------------------------------------

def _cli(*args: str):
    app = typer.Typer()
    app.command()(eval_mmlu_pro_command)
    return CliRunner().invoke(app, list(args))


def _cli_args(tiny_assets, out_dir, **overrides):  # noqa: F811
    args = {"--model": str(tiny_assets["model"]), "--role": "baseline", "--label": "tiny", "--subject": "math",
            "--dataset": str(tiny_assets["dataset"]), "--engine": "hf", "--out-dir": str(out_dir)}
    args.update(overrides)
    return [item for pair in args.items() for item in pair]


def test_an_unknown_subject_lists_the_fourteen(tiny_assets, tmp_path):  # noqa: F811
    result = _cli(*_cli_args(tiny_assets, tmp_path, **{"--subject": "maths"}))
    assert result.exit_code == 2
    assert "'maths' is not an MMLU-Pro subject; valid: biology, business" in result.output
    assert "computer science" in result.output and "Traceback" not in result.output


def test_a_dataset_without_the_fields_names_the_missing_ones(tiny_assets, tmp_path):  # noqa: F811
    import pyarrow.parquet as pq

    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("validation", "test"):
        table = pq.read_table(tiny_assets["dataset"] / f"{split}.parquet")
        pq.write_table(table.drop_columns(["cot_content"]), broken / f"{split}.parquet")
    result = _cli(*_cli_args(tiny_assets, tmp_path / "out", **{"--dataset": str(broken)}))
    assert result.exit_code == 2 and "lacks the MMLU-Pro field(s) cot_content" in result.output


def test_a_model_that_cannot_load_says_why(tiny_assets, tmp_path):  # noqa: F811
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "README.md").write_text("no weights here")
    result = _cli(*_cli_args(tiny_assets, tmp_path / "out", **{"--model": str(empty)}))
    assert result.exit_code == 2
    assert f"--model {empty} (engine hf) cannot be loaded:" in result.output


def test_the_vllm_engine_without_vllm_installed_says_so(tiny_assets, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    result = _cli(*_cli_args(tiny_assets, tmp_path / "out", **{"--engine": "vllm"}))
    assert result.exit_code == 2 and "--engine vllm needs the vllm package" in result.output


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--role", "student", "valid: baseline, finetuned"),
    ("--extract", "loose", "valid: tiger, strict"),
    ("--engine", "tgi", "valid: vllm, hf"),
    ("--max-model-len", "100", "must exceed --max-new-tokens"),
    ("--limit", "-1", "0 (all questions) or more"),
])
def test_bad_settings_are_named(tiny_assets, tmp_path, flag, value, message):  # noqa: F811
    args = _cli_args(tiny_assets, tmp_path, **{flag: value, "--max-new-tokens": "200"})
    result = _cli(*args)
    assert result.exit_code == 2 and message in result.output and value in result.output


def test_the_module_has_a_help():
    result = subprocess.run([sys.executable, "-m", "steps.eval_mmlu_pro", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 0 and "--max-model-len" in result.stdout


# --- the vLLM adapter, over a stand-in for the vllm package (vLLM needs a GPU image) ------------

class _FakeLLM:
    """Records how the adapter drives vLLM's offline API and answers like it."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        _FakeLLM.last = self

    def get_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.kwargs["tokenizer"])

    def generate(self, prompts, params, lora_request=None):
        from types import SimpleNamespace

        self.calls.append((prompts, params, lora_request))
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f" so the answer is ({'ABCD'[i % 4]}).",
                                                         finish_reason="length" if i % 2 else "stop")])
                for i in range(len(prompts))]


@pytest.fixture
def fake_vllm(monkeypatch):
    from collections import namedtuple
    from types import ModuleType, SimpleNamespace

    vllm, lora, request = ModuleType("vllm"), ModuleType("vllm.lora"), ModuleType("vllm.lora.request")
    vllm.LLM = _FakeLLM
    vllm.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)
    request.LoRARequest = namedtuple("LoRARequest", "name id path")
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    return _FakeLLM


def test_vllm_answers_a_chunk_in_one_batched_call_with_the_shared_prompts(tiny_assets, tmp_path, fake_vllm):  # noqa: F811
    from steps.mmlu_pro.engines.vllm import CHUNK_SIZE, VllmEngine

    # Chunked, so that answers are saved during a subject, yet in calls large enough to keep vLLM busy.
    assert VllmEngine.chunk_size == CHUNK_SIZE and CHUNK_SIZE >= 64
    settings = GenerationSettings(max_new_tokens=12, max_model_len=420, tensor_parallel=2)
    summary = evaluate(str(tiny_assets["model"]), "baseline", "tiny", SUBJECT, str(tiny_assets["dataset"]),
                       tmp_path, engine="vllm", settings=settings, log=lambda m: None)
    llm = fake_vllm.last
    assert llm.kwargs["model"] == str(tiny_assets["model"]) and llm.kwargs["tensor_parallel_size"] == 2
    assert llm.kwargs["max_model_len"] == 420 and "enable_lora" not in llm.kwargs
    (prompts, params, lora_request), = llm.calls
    assert len(prompts) == 8 and lora_request is None
    assert all(p.temperature == 0 and p.max_tokens == 12 and p.stop == ["Question:"] for p in params)
    assert all(prompt.endswith("Answer: Let's think step by step.") for prompt in prompts)
    records = read_records(records_path(tmp_path, SUBJECT))
    assert [r["pred"] for r in records] == ["ABCD"[i % 4] for i in range(8)]
    assert [r["hit_token_limit"] for r in records] == [bool(i % 2) for i in range(8)]
    assert summary["engine"] == "vllm" and summary["methods"]["l1"] == 8 and summary["truncated"] == 4


def test_vllm_saves_after_each_chunk_and_a_retried_pod_generates_only_the_rest(
        tiny_assets, tmp_path, fake_vllm, monkeypatch):  # noqa: F811
    from steps.mmlu_pro.engines.vllm import VllmEngine

    monkeypatch.setattr(VllmEngine, "chunk_size", 3)
    settings = GenerationSettings(max_new_tokens=12, max_model_len=420)

    def run(out_dir):
        return evaluate(str(tiny_assets["model"]), "baseline", "tiny", SUBJECT, str(tiny_assets["dataset"]),
                        out_dir, engine="vllm", settings=settings, log=lambda m: None)

    uninterrupted = tmp_path / "uninterrupted"
    run(uninterrupted)
    assert [len(prompts) for prompts, _, _ in fake_vllm.last.calls] == [3, 3, 2]

    # The pod is preempted during the third call: the first two chunks are on disk already.
    out_dir = tmp_path / "preempted"
    records_file = records_path(out_dir, SUBJECT)
    saved_at_each_call = []
    real_generate = fake_vllm.generate

    def preempted_generate(self, prompts, params, lora_request=None):
        saved_at_each_call.append(len(read_records(records_file)))
        if len(saved_at_each_call) == 3:
            raise RuntimeError("pod preempted")
        return real_generate(self, prompts, params, lora_request)

    monkeypatch.setattr(fake_vllm, "generate", preempted_generate)
    with pytest.raises(RuntimeError, match="preempted"):
        run(out_dir)
    assert saved_at_each_call == [0, 3, 6] and len(read_records(records_file)) == 6

    # The retried pod generates the last chunk only, cut as in the uninterrupted run, with the same result.
    monkeypatch.setattr(fake_vllm, "generate", real_generate)
    summary = run(out_dir)
    (prompts, _, _), = fake_vllm.last.calls
    assert len(prompts) == 2
    assert read_records(records_file) == read_records(records_path(uninterrupted, SUBJECT))
    assert summary["n"] == summary["n_questions"] == 8 and summary["complete"]


def test_vllm_serves_a_lora_adapter_over_its_base_model(tiny_assets, tmp_path, fake_vllm):  # noqa: F811
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tiny_assets["model"]), "r": 24, "peft_type": "LORA"}))
    evaluate(str(adapter), "finetuned", "tiny-lora", SUBJECT, str(tiny_assets["dataset"]), tmp_path / "out",
             engine="vllm", settings=SETTINGS, limit=2, log=lambda m: None)
    llm = fake_vllm.last
    assert llm.kwargs["model"] == str(tiny_assets["model"]) == llm.kwargs["tokenizer"]
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_lora_rank"] == 32
    assert llm.calls[0][2].path == str(adapter)


def test_local_model_fingerprint_tells_weights_apart(tmp_path):
    from steps.mmlu_pro.engines.base import FINGERPRINT_SAMPLE_BYTES, folder_fingerprint

    def model_folder(name: str, tail: bytes) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "llama"}')
        # same size, same config: only the weights' last bytes differ, as after a merge
        (folder / "model.safetensors").write_bytes(b"\0" * (4 * FINGERPRINT_SAMPLE_BYTES) + tail)
        return folder

    base, merged = model_folder("base", b"base"), model_folder("merged", b"tune")
    assert folder_fingerprint(base) != folder_fingerprint(merged)
    assert folder_fingerprint(base) == folder_fingerprint(model_folder("copy", b"base"))


# --- issue 11 item 12: a torn last line is dropped on resume ------------------------------------

def test_item12_a_torn_last_line_is_dropped_and_resume_keeps_the_good_rows(tiny_assets, reference_run, tmp_path):  # noqa: F811
    _, expected_summary, expected_records = reference_run
    records_file = records_path(tmp_path, SUBJECT)
    lines = [json.dumps(record, ensure_ascii=False, sort_keys=True) for record in expected_records]
    records_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:len(lines[-1]) // 2])
    messages: list[str] = []
    factory = CountingFactory()
    summary = _run(tiny_assets, tmp_path, engine_factory=factory, log=messages.append)
    assert len(factory.prompts) == 1   # only the torn question is answered again
    assert read_records(records_file) == expected_records and summary["n"] == expected_summary["n"]
    assert any(f"{records_file}:{len(lines)}: the last line is cut short" in m and "are kept" in m for m in messages)


def test_item12_a_bad_line_before_the_last_is_still_an_error(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text('{"question_id": 1}\n{"question_id": 2, "tor\n{"question_id": 3}\n')
    with pytest.raises(StepInputError, match=r"math.jsonl:2 is not a JSON line .*delete the file to start over"):
        read_records(path)
    path.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(StepInputError, match="is not UTF-8 text"):
        read_records(path)


def test_item7_an_unusable_out_dir_is_refused_before_the_model_is_loaded(tiny_assets, tmp_path):  # noqa: F811
    (tmp_path / "a file").write_text("kept")
    (tmp_path / "dirs" / f"{SUBJECT}.jsonl").mkdir(parents=True)

    def no_engine(*args):
        raise AssertionError("the model was loaded although the outputs cannot be written")

    for out_dir, says in ((tmp_path / "a file", "is a file, not a directory"), (tmp_path / "dirs", "is a directory")):
        with pytest.raises(StepInputError, match=says):
            _run(tiny_assets, out_dir, engine_factory=no_engine)
    assert (tmp_path / "a file").read_text() == "kept"
