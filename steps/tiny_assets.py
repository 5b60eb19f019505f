"""Tiny, deterministic stand-ins for the real assets, built offline in seconds.

- `build_tiny_tokenizer(dir)`: a byte-level BPE tokenizer trained on synthetic text, with
  `<s>`/`</s>`/`<pad>` and a simple chat template, loadable by `AutoTokenizer`.
- `build_tiny_llama(dir, tokenizer_dir=...)`: a randomly initialised `LlamaForCausalLM`
  saved as safetensors with its tokenizer, loadable by `AutoModelForCausalLM`.
- `build_mmlu_pro_dataset(dir, ...)`: synthetic rows in the TIGER-Lab/MMLU-Pro schema,
  written as `validation.parquet` and `test.parquet`.
- `build_acereason_dataset(path, ...)`: synthetic `problem`/`answer` rows whose answers
  end in "The answer is (X).", the format the fine-tuned model should learn.

`python -m steps.tiny_assets --out DIR` builds all four under DIR.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import atomic_path, step_main
from steps.mmlu_pro.prompt import OPTION_LETTERS, format_example, header
from steps.contract import SUBJECTS

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MAX_POSITIONS = 4096
_OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """Build a folder beside `target` and swap it in whole, so a half-built folder is never seen."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder is meant to be shared like any other
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# --- synthetic multiple-choice questions ---------------------------------------------------

@dataclass(frozen=True)
class _Item:
    question: str
    options: list[str]
    answer_index: int
    reasoning: str

    @property
    def letter(self) -> str:
        return OPTION_LETTERS[self.answer_index]

    @property
    def solution(self) -> str:
        return f"{self.reasoning} The answer is ({self.letter})."


def _item(rng: random.Random, subject: str, n_options: int) -> _Item:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    symbol = rng.choice(sorted(_OPERATIONS))
    value = _OPERATIONS[symbol](a, b)
    wrong = sorted({value + delta for delta in range(-12, 13) if delta} , key=lambda _: rng.random())
    options = [str(v) for v in wrong[:n_options - 1]]
    answer_index = rng.randrange(n_options)
    options.insert(answer_index, str(value))
    return _Item(question=f"In a {subject} exercise, what is {a} {symbol} {b}?", options=options,
                 answer_index=answer_index, reasoning=f"We compute {a} {symbol} {b} = {value}.")


def _option_count(rng: random.Random) -> int:
    # Most MMLU-Pro questions have ten options; about a sixth have fewer.
    return 10 if rng.random() < 0.8 else rng.choice((3, 4, 6, 8, 9))


def mmlu_pro_rows(subjects: Sequence[str], n_per_subject: int, seed: int, first_id: int,
                  with_cot: bool) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for subject in subjects:
        for _ in range(n_per_subject):
            item = _item(rng, subject, _option_count(rng))
            options = list(item.options)
            if len(options) < 10 and rng.random() < 0.5:
                # The 2024 release padded some option lists with "N/A"; evaluation drops them.
                options += ["N/A"] * (10 - len(options))
            rows.append({
                "question_id": first_id + len(rows), "question": item.question, "options": options,
                "answer": item.letter, "answer_index": item.answer_index,
                "cot_content": f"A: Let's think step by step. {item.solution}" if with_cot else "",
                "category": subject, "src": f"synthetic-{subject.replace(' ', '_')}",
            })
    return rows


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return path


def build_mmlu_pro_dataset(dir: str | os.PathLike[str], subjects: Sequence[str] = SUBJECTS,
                           n_test: int = 20, n_val: int = 5, seed: int = 0) -> Path:
    """`validation.parquet` (n_val rows per subject, with CoT) and `test.parquet` (n_test per subject)."""
    folder = Path(dir)
    _write_parquet(mmlu_pro_rows(subjects, n_val, seed, first_id=0, with_cot=True), folder / "validation.parquet")
    _write_parquet(mmlu_pro_rows(subjects, n_test, seed + 1, first_id=100_000, with_cot=False), folder / "test.parquet")
    return folder


def acereason_rows(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        item = _item(rng, rng.choice(SUBJECTS), _option_count(rng))
        options = "".join(f"{OPTION_LETTERS[i]}. {option}\n" for i, option in enumerate(item.options))
        rows.append({"problem": f"{item.question}\nOptions:\n{options}", "answer": item.solution})
    return rows


def build_acereason_dataset(path: str | os.PathLike[str], n: int = 200, seed: int = 0) -> Path:
    """A parquet file with `problem`/`answer` columns, like nvidia/AceReason-Math."""
    return _write_parquet(acereason_rows(n, seed), Path(path))


# --- tokenizer and model ---------------------------------------------------------------------

def _corpus(seed: int) -> list[str]:
    texts = [header(subject) for subject in SUBJECTS]
    texts += [format_example(row) for row in mmlu_pro_rows(SUBJECTS, 40, seed, 0, with_cot=True)]
    texts += [f"{row['problem']}{row['answer']}" for row in acereason_rows(400, seed)]
    return texts


def build_tiny_tokenizer(dir: str | os.PathLike[str], vocab_size: int = 1024, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(seed), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                      model_max_length=MAX_POSITIONS)
    wrapped.chat_template = CHAT_TEMPLATE
    folder = Path(dir)
    with _atomic_dir(folder) as tmp:
        wrapped.save_pretrained(tmp)
    return folder


def build_tiny_llama(dir: str | os.PathLike[str], tokenizer_dir: str | os.PathLike[str] | None = None,
                     seed: int = 0, hidden_size: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     intermediate_size: int = 128) -> Path:
    """A random-init Llama; `tokenizer_dir` defaults to a fresh tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(dir)
    with _atomic_dir(folder) as tmp:
        if tokenizer_dir is None:
            tokenizer_dir = build_tiny_tokenizer(tmp / "tokenizer-build", seed=seed)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
            max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "tokenizer-build", ignore_errors=True)
    return folder


def build_all(out: Path, seed: int = 0, n_test: int = 20, n_val: int = 5, acereason_rows: int = 200) -> dict[str, Path]:
    tokenizer = build_tiny_tokenizer(out / "tokenizer", seed=seed)
    return {
        "tokenizer": tokenizer,
        "model": build_tiny_llama(out / "tiny-llama", tokenizer_dir=tokenizer, seed=seed),
        "mmlu_pro": build_mmlu_pro_dataset(out / "mmlu-pro", SUBJECTS, n_test=n_test, n_val=n_val, seed=seed),
        "acereason": build_acereason_dataset(out / "acereason.parquet", n=acereason_rows, seed=seed),
    }


def tiny_assets_command(
    out: Annotated[Path, typer.Option(help="Folder for tokenizer/, tiny-llama/, mmlu-pro/ and acereason.parquet.")],
    seed: Annotated[int, typer.Option(help="Seed of every builder.")] = 0,
    n_test: Annotated[int, typer.Option(help="MMLU-Pro test questions per subject.")] = 20,
    n_val: Annotated[int, typer.Option(help="MMLU-Pro validation (few-shot) rows per subject.")] = 5,
    acereason_rows: Annotated[int, typer.Option(help="Rows of the synthetic training set.")] = 200,
) -> None:
    """Build the tiny tokenizer, model and datasets the tests and the local demo run on."""
    for name, path in build_all(out, seed, n_test, n_val, acereason_rows).items():
        print(f"{name}: {path}")


def main() -> None:
    step_main(tiny_assets_command)


if __name__ == "__main__":
    main()
