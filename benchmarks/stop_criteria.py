"""What the stop string costs the hf engine per batch: transformers' tables rebuilt on every call, or built once.

    python benchmarks/stop_criteria.py [--batches 3]

`generate(stop_strings=..., tokenizer=...)` constructs a StopStringCriteria on every call; its tables
span the whole vocabulary and its cache never hits (the key holds `get_vocab()`'s order, which changes
from call to call). The hf engine builds one criterion when it loads (`steps.mmlu_pro.engines.hf.
stop_criteria`) and passes it to every batch. This times, in CPU seconds, what each batch pays for its
criterion either way, on byte-level BPE vocabularies of the tiny model's size (1,024), Llama-2's and
Mistral's (32,000) and Llama-3's (128,256). The vocabularies are synthetic (no network here): random
strings over the byte alphabet, so the cost per token is like a real vocabulary's, not its exact value.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from steps.mmlu_pro.engines.base import STOP_STRINGS
from steps.mmlu_pro.engines.hf import stop_criteria

VOCABULARY_SIZES = (1024, 32000, 128256)
MMLU_PRO_QUESTIONS = 12032
BATCH_SIZE = 8


def synthetic_tokenizer(size: int, seed: int = 0) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    letters = "abcdefghijklmnopqrstuvwxyzQ:Ġ0123456789"
    while len(vocab) < size:
        vocab.setdefault("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))), len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


def cpu_seconds(action: Any) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3, help="calls timed per vocabulary (the median is kept)")
    args = parser.parse_args(argv)
    batches = -(-MMLU_PRO_QUESTIONS // BATCH_SIZE)
    print(f"CPU seconds of the stop criterion; MMLU-Pro = {MMLU_PRO_QUESTIONS} questions in {batches} batches "
          f"of {BATCH_SIZE}; median of {args.batches} builds")
    print(f"{'vocabulary':>10}{'one build (the engine, at load)':>33}{'a build per batch (generate), all MMLU-Pro':>44}")
    for size in VOCABULARY_SIZES:
        tokenizer = synthetic_tokenizer(size)
        # generate(stop_strings=...) builds one on each call; the engine builds one when it loads.
        build = statistics.median(cpu_seconds(lambda tokenizer=tokenizer: stop_criteria(tokenizer, STOP_STRINGS))
                                  for _ in range(args.batches))
        print(f"{size:>10}{build:>33.3f}{build * batches:>44.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
