"""The `hf` eval engine against lm-evaluation-harness on the same questions, prompts and settings.

    python benchmarks/eval_vs_lmeval.py [--lmeval-python PY (default: $LMEVAL_PYTHON, else ../lmeval-venv/bin/python)]
        [--questions 8,48] [--repeats 3] [--max-new-tokens 32] [--batch-size 8] [--workdir DIR]

lm-eval is not a dependency of this project: give the Python of a venv that has it, e.g. beside
the checkout: `python -m venv ../lmeval-venv && ../lmeval-venv/bin/pip install --no-deps lm-eval`
plus a `.pth` file in its site-packages naming this project's venv's site-packages, so that both
sides run the same torch and transformers. Without one the benchmark says so and exits 0.

Both sides run as their own processes with OMP_NUM_THREADS=1 on the tiny model of
`steps.tiny_assets`, greedy, the same batch size, the same stop string and the same prompts
(this project's 5-shot prompts, built once here and handed to lm-eval's HFLM.generate_until,
which sorts by length and batches as an lm-eval task would). Our side is the whole step
(`python -m steps.eval_mmlu_pro --limit N`): prompt building, extraction and the results files
included. The cost of an extra question is the CPU-seconds slope between the two --questions
sizes (median of --repeats interleaved runs); the start-up cost cancels out of it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_LMEVAL_PYTHON = Path(os.environ.get("LMEVAL_PYTHON") or ROOT.parent / "lmeval-venv" / "bin" / "python")
SUBJECT = "math"
MAX_MODEL_LEN = 2048
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}


def child_cpu_seconds(command: list[str], cwd: Path = ROOT) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def lmeval_available(python: Path) -> str | None:
    """None when lm-eval can be run with `python`, else why not."""
    if not python.is_file():
        return f"no Python at {python}"
    probe = subprocess.run([str(python), "-c", "import lm_eval.models.huggingface"], capture_output=True, text=True,
                           check=False, env=ENV)
    return None if probe.returncode == 0 else f"{python} cannot import lm_eval: {probe.stderr.strip()[-300:]}"


def build_prompts(assets: Path, count: int, max_new_tokens: int) -> list[tuple[str, int]]:
    """The prompts the step feeds the model for the first `count` questions, with their token limits."""
    from transformers import AutoTokenizer

    from steps.mmlu_pro.data import load_subject
    from steps.mmlu_pro.engines.base import token_counter
    from steps.mmlu_pro.prompt import PromptBuilder

    data = load_subject(str(assets / "mmlu-pro"), SUBJECT, None)
    count_tokens = token_counter(AutoTokenizer.from_pretrained(assets / "tiny-llama"))
    prompts = PromptBuilder(SUBJECT, data.shots).fit(data.questions[:count], count_tokens,
                                                      MAX_MODEL_LEN - max_new_tokens)
    return [(p.text, min(max_new_tokens, MAX_MODEL_LEN - p.tokens)) for p in prompts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lmeval-python", type=Path, default=DEFAULT_LMEVAL_PYTHON)
    parser.add_argument("--questions", default="8,48")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    missing = lmeval_available(args.lmeval_python)
    if missing:
        print(f"skipped: lm-evaluation-harness is not installed ({missing}); see this script's docstring")
        return 0
    small, large = (int(n) for n in args.questions.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tunebench-lmeval-"))
    assets = work / "assets"
    subprocess.run([sys.executable, "-m", "steps.tiny_assets", "--out", str(assets), "--n-test", str(large)],
                   cwd=ROOT, env=ENV, check=True, capture_output=True)
    prompts = build_prompts(assets, large, args.max_new_tokens)

    def ours(count: int, run: int) -> float:
        return child_cpu_seconds([
            sys.executable, "-m", "steps.eval_mmlu_pro", "--model", str(assets / "tiny-llama"), "--role", "baseline",
            "--label", "tiny", "--subject", SUBJECT, "--dataset", str(assets / "mmlu-pro"), "--engine", "hf",
            "--out-dir", str(work / f"ours-{count}-{run}"), "--limit", str(count),
            "--max-new-tokens", str(args.max_new_tokens), "--max-model-len", str(MAX_MODEL_LEN),
            "--batch-size", str(args.batch_size)])

    def lm_eval(count: int, run: int) -> float:
        spec = work / f"lmeval-{count}.json"
        spec.write_text(json.dumps({"model": str(assets / "tiny-llama"), "batch_size": args.batch_size,
                                    "max_length": MAX_MODEL_LEN, "stop": ["Question:"],
                                    "prompts": prompts[:count]}), encoding="utf-8")
        return child_cpu_seconds([str(args.lmeval_python), str(ROOT / "benchmarks" / "lmeval_driver.py"), str(spec),
                                  str(work / f"lmeval-{count}-{run}.out.json")], cwd=work)

    cpu: dict[tuple[str, int], list[float]] = {}
    for run in range(args.repeats):
        for count in (small, large):
            cpu.setdefault(("ours", count), []).append(ours(count, run))
            cpu.setdefault(("lm-eval", count), []).append(lm_eval(count, run))
    median = {key: statistics.median(values) for key, values in cpu.items()}
    extra = large - small
    per_question = {side: (median[(side, large)] - median[(side, small)]) / extra for side in ("ours", "lm-eval")}

    from steps.mmlu_pro.results import read_records

    our_texts = [r["generated_text"] for r in read_records(work / f"ours-{large}-0" / f"{SUBJECT}.jsonl")]
    their_texts = json.loads((work / f"lmeval-{large}-0.out.json").read_text(encoding="utf-8"))
    same = sum(a.strip() == b.strip() for a, b in zip(our_texts, their_texts, strict=True))

    print(f"{large} vs {small} questions, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"OMP_NUM_THREADS=1, median of {args.repeats} (CPU s)")
    for side in ("ours", "lm-eval"):
        print(f"  {side:<8} {median[(side, small)]:7.2f} s / {median[(side, large)]:7.2f} s   "
              f"per extra question {per_question[side] * 1000:7.1f} ms")
    print(f"  ratio ours / lm-eval per extra question: {per_question['ours'] / per_question['lm-eval']:.2f}")
    print(f"  same generated text: {same}/{large}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
