"""Run by benchmarks/eval_vs_lmeval.py under lm-evaluation-harness's own Python: lm-eval's HF
model answers the prompts of a JSON file with `generate_until`, as an lm-eval task would ask it.

    python lmeval_driver.py PROMPTS.json OUT.json

PROMPTS.json: {"model", "batch_size", "max_length", "stop", "prompts": [[text, max_new_tokens], ...]}.
No project import: it runs beside a venv that has lm-eval, not this project.
"""
from __future__ import annotations

import json
import sys

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM


def main() -> None:
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    model = HFLM(pretrained=spec["model"], batch_size=spec["batch_size"], max_length=spec["max_length"],
                 device="cpu", dtype="float32")
    requests = [Instance(request_type="generate_until", doc={}, idx=i,
                         arguments=(text, {"until": spec["stop"], "max_gen_toks": limit, "do_sample": False}))
                for i, (text, limit) in enumerate(spec["prompts"])]
    answers = model.generate_until(requests, disable_tqdm=True)
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(answers, out)


if __name__ == "__main__":
    main()
