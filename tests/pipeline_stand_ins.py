"""Stand-ins for the pipeline's heavy steps (convert, gate, train, merge, upload, eval), so the
rendered DAG's scoring tail — plan-eval, aggregate, publish-scores and verdict, all real — runs
through the local runner in seconds. Each writes the files the real step would, from its argv.

Run as a template's command: `python -c "<RUN>" <the step's own args>`; STAND_IN names the step,
STAND_IN_SCORES gives the eval results ({"role": {"subject": [correct, n]}}), and
STAND_IN_UPLOAD_CARD=no makes the upload leave out README.md (so a card-only update refuses it).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from steps.contract import FINAL_AXOLOTL_CONFIG, subject_summary_file

RUN = "import sys; sys.path.insert(0, 'tests'); import pipeline_stand_ins; pipeline_stand_ins.main(sys.argv[1:])"
HEAVY_TEMPLATES = ("convert-dataset", "memory-gate", "prefetch-base-model", "prefetch-eval", "train", "merge-lora",
                   "upload", "eval-mmlu-pro")
MODEL_REVISION = "rev-1"


def _options(argv: list[str]) -> dict[str, str]:
    return {argv[i][2:]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


def _eval(options: dict[str, str]) -> None:
    from steps.common import write_json_atomic
    from steps.mmlu_pro.node_outputs import write_eval_outputs
    from steps.mmlu_pro.results import subject_summary

    correct, n = json.loads(os.environ["STAND_IN_SCORES"])[options["role"]][options["subject"]]
    records = [{"correct": i < correct, "method": "l1", "k": 5, "hit_token_limit": False} for i in range(n)]
    summary = subject_summary(records, n_questions=n, subject=options["subject"], model=options["model"],
                              label=options["label"], role=options["role"], engine=options["engine"],
                              model_revision=MODEL_REVISION, dataset=options["dataset"], dataset_revision="data-1",
                              extract="tiger", limit=None, settings={}, settings_hash="settings-1")
    write_json_atomic(Path(options["out-dir"]) / subject_summary_file(options["subject"]), summary)
    write_eval_outputs(Path(options["out-dir"]), options["subject"], summary)   # the template's output parameters


def _upload(options: dict[str, str]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_upload_support import make_model_folder

    target = make_model_folder(Path(options["target"]))
    if os.environ.get("STAND_IN_UPLOAD_CARD") != "no":
        (target / "README.md").write_text("# the card of the upload\n")


def main(argv: list[str]) -> None:
    step, options = os.environ["STAND_IN"], _options(argv)
    if step == "prefetch-base-model":
        Path(options["merge-memory-out"]).parent.mkdir(parents=True, exist_ok=True)
        Path(options["merge-memory-out"]).write_text("4Gi")
    elif step == "train":
        run_dir = Path(options["run-dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / FINAL_AXOLOTL_CONFIG).write_text(f"base_model: {options['base-model']}\nadapter: lora\nlora_r: 8\n")
    elif step == "upload":
        _upload(options)
    elif step == "eval-mmlu-pro":
        _eval(options)


def stand_in(manifest: dict, scores: dict, upload_card: bool = True) -> dict:
    """`manifest` with its heavy step templates replaced by the stand-ins above (in place)."""
    for template in manifest["spec"]["templates"]:
        if template["name"] in HEAVY_TEMPLATES and "container" in template:
            container = template["container"]
            container["command"] = ["python", "-c", RUN]
            container["env"] = [*container.get("env", []), {"name": "STAND_IN", "value": template["name"]},
                                {"name": "STAND_IN_SCORES", "value": json.dumps(scores)},
                                {"name": "STAND_IN_UPLOAD_CARD", "value": "yes" if upload_card else "no"}]
    return manifest
