"""steps.tiny_assets: deterministic tiny tokenizer, model and datasets, built without downloads."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from fixtures.mmlu_assets import TINY_SUBJECTS, tiny_assets  # noqa: F401  (fixture)

from steps.mmlu_pro.data import REQUIRED_FIELDS
from steps.tiny_assets import build_acereason_dataset, build_all, build_mmlu_pro_dataset, build_tiny_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_the_tokenizer_is_deterministic_and_has_bos_eos_pad_and_a_chat_template(tiny_assets, tmp_path):  # noqa: F811
    from transformers import AutoTokenizer

    again = build_tiny_tokenizer(tmp_path / "tokenizer")
    assert (again / "tokenizer.json").read_bytes() == (tiny_assets["tokenizer"] / "tokenizer.json").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(again)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    ids = tokenizer("Question:\nWhat is 3 + 4? The answer is (C).")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Question:\nWhat is 3 + 4? The answer is (C)."
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<s><|user|>\nhi</s>\n<|assistant|>\n"


def test_the_model_loads_with_the_auto_classes_and_generates(tiny_assets):  # noqa: F811
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_assets["model"]
    assert (folder / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == len(tokenizer)
    inputs = tokenizer("What is", return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3


def test_the_mmlu_pro_dataset_has_the_real_schema_and_is_deterministic(tiny_assets, tmp_path):  # noqa: F811
    validation = pq.read_table(tiny_assets["dataset"] / "validation.parquet").to_pylist()
    test = pq.read_table(tiny_assets["dataset"] / "test.parquet").to_pylist()
    assert set(REQUIRED_FIELDS) | {"src"} == set(validation[0]) == set(test[0])
    assert [row["category"] for row in test].count("math") == 8 and {r["category"] for r in test} == set(TINY_SUBJECTS)
    assert len({row["question_id"] for row in validation + test}) == len(validation) + len(test)
    for row in validation:
        assert row["cot_content"].startswith("A: Let's think step by step.")
        assert re.search(r"The answer is \(([A-J])\)\.$", row["cot_content"]).group(1) == row["answer"]
    for row in validation + test:
        real = [option for option in row["options"] if option != "N/A"]
        assert len(row["options"]) <= 10 and row["answer_index"] < len(real)
        assert "ABCDEFGHIJ"[row["answer_index"]] == row["answer"]
    assert any(len(row["options"]) < 10 for row in test) and any("N/A" in row["options"] for row in test + validation)
    again = build_mmlu_pro_dataset(tmp_path / "again", TINY_SUBJECTS, n_test=8, n_val=5, seed=0)
    assert pq.read_table(again / "test.parquet").to_pylist() == test


def test_acereason_answers_end_in_the_answer_format(tmp_path):
    rows = pq.read_table(build_acereason_dataset(tmp_path / "train.parquet", n=30, seed=1)).to_pylist()
    assert len(rows) == 30 and set(rows[0]) == {"problem", "answer"}
    assert all(re.search(r"The answer is \([A-J]\)\.$", row["answer"]) for row in rows)
    assert all("\nOptions:\nA. " in row["problem"] for row in rows)


def test_build_all_lays_out_the_four_assets_the_command_line_makes(tmp_path):
    built = build_all(tmp_path, n_test=2, n_val=1, acereason_rows=5)
    assert built == {"tokenizer": tmp_path / "tokenizer", "model": tmp_path / "tiny-llama",
                     "mmlu_pro": tmp_path / "mmlu-pro", "acereason": tmp_path / "acereason.parquet"}
    assert len(pq.read_table(built["mmlu_pro"] / "test.parquet")) == 2 * 14
    assert (built["model"] / "config.json").is_file() and len(pq.read_table(built["acereason"])) == 5
    result = subprocess.run([sys.executable, "-m", "steps.tiny_assets", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--out" in result.stdout
