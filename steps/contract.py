"""The names the builders, the steps, the local runner, the status view and the report agree on.

Folder and file names of a run, the volumes' mount paths, exit codes and what each means,
labels, object names, the MMLU-Pro subjects and the hub repo-id pattern: each is spelled here
once (docs/design.md, *Layout* and *Paths inside the pods*) and everywhere else by its name;
tests/test_contract.py fails when one of these literals reappears outside this module.

Standard library only: the steps import it inside the light, train and eval images, and
`workflows` imports it without pulling any step's dependencies.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from posixpath import join

# --- exit codes: what the DAG's retry policies, `depends` and the status view rely on ---------
EXIT_OK = 0
EXIT_FAILURE = 1        # not the input's fault; the light and eval templates retry it (the network, the hub)
EXIT_BAD_INPUT = 2
EXIT_GATE_CLOSED = 3    # the memory estimate does not fit the GPUs (estimate_memory --mode fail)
EXIT_REGRESSION = 4     # a score fell beyond the threshold (verdict, aggregate --on-regression fail)
EXIT_INTERRUPTED = 130  # tunebench's own commands, stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
# A step's verdict on its input: rerunning (a retry, a restarted JobSet) changes nothing.
VERDICT_EXIT_CODES = (EXIT_BAD_INPUT, EXIT_GATE_CLOSED, EXIT_REGRESSION)

# --- volumes (under /mnt: the Axolotl and vLLM images keep their own files in /workspace) -----
WORKSPACE_MOUNT = "/mnt/workspace"
HF_CACHE_MOUNT = "/mnt/hf-cache"
SHM_MOUNT = "/dev/shm"
RUNS_FOLDER = "runs"                   # WORKSPACE_MOUNT/runs/<workflow name> is a run's RUN
HISTORY_FOLDER = "history/mmlu-pro"    # WORKSPACE_MOUNT/history/mmlu-pro/<run>.parquet
HISTORY_DIR = join(WORKSPACE_MOUNT, HISTORY_FOLDER)
# `tunebench run` keeps each volume in <workdir>/volumes/<volume name> (docs/local-runner.md).
LOCAL_VOLUMES_FOLDER = "volumes"

# --- folders and file names inside RUN ---------------------------------------------------------
EVAL_FOLDER = "eval"                   # RUN/eval/<model slug>/<subject>...
SUMMARY_FOLDER = "summary"             # beside EVAL_FOLDER: aggregate's files
TRAIN_PARQUET = "train.parquet"
HOLDOUT_PARQUET = "holdout.parquet"
DATASET_STATS = "stats.json"
ESTIMATE_JSON = "estimate.json"
FINAL_AXOLOTL_CONFIG = "axolotl.yaml"
TRAIN_DONE = "done.json"
TRAIN_REQUEST = "request.json"         # train.nodes > 1: the resolved train command every node runs
TRAIN_PREPARED = "prepared"            # Axolotl's dataset_prepared_path
TRAIN_OUTPUT = "output"                # Axolotl's output_dir: the adapter, checkpoint-*/
MERGED_FOLDER = "merged"               # in TRAIN_OUTPUT: merge-lora's result
MERGED_RECORD = "merged.json"          # beside MERGED_FOLDER: the adapter it was merged from
PLAN_FOLDER = "plan"  # RUN/eval/plan: plan_eval's files, beside the models' results folders
# plan_eval's files in RUN/eval/plan, by stem: the two item lists are also its output parameters.
BASELINE_ITEMS = "baseline-items"
FINETUNED_ITEMS = "finetuned-items"
PLANNED_MODELS = "models"
SUBJECT_SUMMARY_SUFFIX = ".summary.json"
SUBJECT_OUTPUTS_SUFFIX = ".outputs"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SCORES_PNG = "scores.png"
TREND_PNG = "trend.png"
SUMMARY_ID = "summary.id"              # written last: aggregate's output parameter
SUMMARY_OUTPUTS = "outputs"            # aggregate's other output parameters, one file each
FINETUNED_SLUG = "finetuned"           # RUN/eval/<slug>: the fine-tuned model's results


def plan_file(stem: str) -> str:
    return f"{stem}.json"


def subject_results_file(subject: str) -> str:
    """`<subject>.jsonl`: one record per question, in the dataset's order."""
    return f"{subject}.jsonl"


def subject_summary_file(subject: str) -> str:
    return f"{subject}{SUBJECT_SUMMARY_SUFFIX}"


def subject_outputs_folder(subject: str) -> str:
    """The eval node's output parameters, one file each."""
    return f"{subject}{SUBJECT_OUTPUTS_SUFFIX}"


@dataclass(frozen=True)
class RunFolder:
    """RUN's layout under `root` (a POSIX path: `{{workflow.name}}`'s run in the manifests, a real folder
    locally); the folders no other module names are spelled only here."""

    root: str

    def _at(self, *parts: str) -> str:
        return join(self.root, *parts)

    @property
    def data(self) -> str:
        return self._at("data")

    @property
    def train_parquet(self) -> str:
        return join(self.data, TRAIN_PARQUET)

    @property
    def estimate(self) -> str:
        return self._at("gate", ESTIMATE_JSON)

    @property
    def prefetch(self) -> str:
        return self._at("prefetch")

    @property
    def train(self) -> str:
        return self._at("train")

    @property
    def train_request(self) -> str:
        return join(self.train, TRAIN_REQUEST)

    @property
    def final_axolotl_config(self) -> str:
        return join(self.train, FINAL_AXOLOTL_CONFIG)

    @property
    def merged_model(self) -> str:
        return join(self.train, TRAIN_OUTPUT, MERGED_FOLDER)

    @property
    def upload(self) -> str:
        return self._at("upload")

    @property
    def eval(self) -> str:
        return self._at(EVAL_FOLDER)

    @property
    def plan(self) -> str:
        return join(self.eval, PLAN_FOLDER)

    def plan_file(self, stem: str) -> str:
        """One of plan_eval's files (`BASELINE_ITEMS`, `FINETUNED_ITEMS`, `PLANNED_MODELS`)."""
        return join(self.plan, plan_file(stem))

    @property
    def summary(self) -> str:
        return self._at(SUMMARY_FOLDER)

    @property
    def summary_json(self) -> str:
        return join(self.summary, SUMMARY_JSON)

    @property
    def summary_id(self) -> str:
        return join(self.summary, SUMMARY_ID)


def run_folder(workspace: str, run_name: str) -> RunFolder:
    """RUN of the workflow `run_name` on the workspace volume mounted at `workspace`."""
    return RunFolder(join(workspace, RUNS_FOLDER, run_name))


# --- labels and object names -----------------------------------------------------------------
APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "tunebench"
PIPELINE_LABEL = "tunebench/pipeline"


def pipeline_labels(pipeline: str) -> dict[str, str]:
    """The labels every object of a pipeline carries, so `kubectl get -l` and the Argo UI find them all."""
    return {APP_LABEL: APP_NAME, PIPELINE_LABEL: pipeline}


def benchmark_template_name(pipeline: str) -> str:
    """The benchmark-only WorkflowTemplate (what the cron and `submit --benchmark` run)."""
    return f"{pipeline}-benchmark"


def rebenchmark_cron_name(pipeline: str) -> str:
    return f"{pipeline}-rebenchmark"


# --- MMLU-Pro and the hub ----------------------------------------------------------------------
# A model's role in a run (plan_eval's items, eval_mmlu_pro --role, the summary's entries).
ROLE_BASELINE = "baseline"
ROLE_FINETUNED = "finetuned"
ROLES = (ROLE_BASELINE, ROLE_FINETUNED)
ROLE_NAMES = {ROLE_BASELINE: "baseline", ROLE_FINETUNED: "fine-tuned"}  # as the report and the card print them

# The 14 subjects, spelled as the dataset's `category` column spells them.
SUBJECTS: tuple[str, ...] = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)

# A hub repo id, ORG/NAME (what huggingface_hub accepts, less its length and `--` rules).
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
