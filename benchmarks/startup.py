"""What each step costs before it does any work: CPU seconds of a real run on tiny inputs.

    python benchmarks/startup.py [--repeats 3] [--workdir DIR] [--compare-with GIT_REV]

Every step runs as the DAG runs it (`python -m steps.<name> ...`, one process, OMP_NUM_THREADS=1)
on the tiny assets of `steps.tiny_assets`, so its work is negligible and what is left is start-up:
the interpreter, imports, reading the inputs. CPU seconds (user + system of the child, from
getrusage) rather than wall time, because the machine the numbers come from is shared; the
median of --repeats runs, interleaved. --compare-with runs the same commands, interleaved, on
that revision of the project too (exported with `git archive`) and prints now / before.

train's fixed cost is the CPU of the step's whole process tree (its Axolotl child, where it has one)
from its start to Axolotl's first data-preparation line ("Loading raw datasets"), read from /proc
when that line appears: imports, the config's validation, Axolotl's config handling. What follows
(tokenizing, the model, the steps) is the same work whoever runs it; the whole one-step run is
timed too.

Budgets (issue 13): light steps (convert, gate, plan, aggregate, upload) under 1.5 s; eval's
fixed cost under 4 s, where fixed cost = the run with 1 question minus the cost of a question
(the slope between 1 and 5 questions); merge-lora in one interpreter (tests/test_merge_lora.py
forbids it child processes; timed here, with Axolotl installed, on a rank-4 adapter that peft
makes over the tiny model, children's CPU included).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIGHT_BUDGET_S = 1.5
EVAL_FIXED_BUDGET_S = 4.0
SUBJECT = "math"


def step_env(root: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled"}


def run_cpu_seconds(args: list[str], root: Path = ROOT) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one step process of the project at `root`; a failing step stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *args], cwd=root, capture_output=True, text=True, check=False,
                            env={**os.environ, **step_env(root)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


TRAIN_DATA_LINE = "Loading raw datasets"
TRAIN_ROWS = ("train to data prep", "train, 1-step run")


def tree_cpu_seconds(root_pid: int) -> float:
    """user + system CPU of `root_pid`, its live descendants and the children they reaped (/proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            processes[int(entry.name)] = (int(fields[1]), sum(int(field) for field in fields[11:15]))
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        total += processes.get(pid, (0, 0))[1]
        pending.extend(child for child, (parent, _) in processes.items() if parent == pid)
    return total / ticks


def train_cpu_seconds(args: list[str], root: Path = ROOT) -> tuple[float, float]:
    """(CPU seconds up to Axolotl's first data-preparation line, CPU seconds of the whole run) of steps.train."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    step = subprocess.Popen([sys.executable, "-m", *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **step_env(root), "PYTHONUNBUFFERED": "1"})
    assert step.stdout is not None
    to_data, tail = None, []
    for line in step.stdout:
        if to_data is None and TRAIN_DATA_LINE in line:
            to_data = tree_cpu_seconds(step.pid)
        tail = [*tail[-40:], line]
    step.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if step.returncode != 0 or to_data is None:
        raise SystemExit(f"steps.train exited {step.returncode} (data line seen: {to_data is not None}): "
                         f"{''.join(tail)[-2000:]}")
    return to_data, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def train_args(assets: Path, work: Path, run_dir: Path) -> list[str]:
    return ["steps.train", "--config", str(ROOT / "configs" / "axolotl" / "tiny-cpu-lora.yaml"),
            "--base-model", str(assets / "tiny-llama"), "--dataset", str(work / "data" / "train.parquet"),
            "--run-dir", str(run_dir), "--gpus", "1", "--overrides", '{"max_steps": 1}', "--save-steps", "1"]


def eval_args(assets: Path, out_dir: Path, limit: int, role: str = "baseline") -> list[str]:
    return ["steps.eval_mmlu_pro", "--model", str(assets / "tiny-llama"), "--role", role, "--label", role,
            "--subject", SUBJECT, "--dataset", str(assets / "mmlu-pro"), "--engine", "hf",
            "--out-dir", str(out_dir), "--limit", str(limit), "--max-new-tokens", "8", "--max-model-len", "1024"]


def plan_args(model: str, out_dir: Path) -> list[str]:
    """The tiny model as both baseline and fine-tuned model, told apart by the fine-tuned one's label
    (plan_eval refuses a baseline named like the fine-tuned model)."""
    return ["steps.plan_eval", "--baselines", json.dumps([model]), "--subjects", json.dumps([SUBJECT]),
            "--finetuned-model", model, "--finetuned-label", "tiny-finetuned", "--out-dir", str(out_dir)]


def step_commands(assets: Path, work: Path, out: Path) -> dict[str, list[str]]:
    """One fresh output place (`out`) per run: no step may find its previous output and skip the work."""
    model = str(assets / "tiny-llama")
    return {
        "convert": ["steps.convert_dataset", "--source", str(assets / "acereason.parquet"),
                    "--out-dir", str(out / "data")],
        "gate": ["steps.estimate_memory", "--model", model, "--axolotl-config",
                 str(ROOT / "configs" / "axolotl" / "tiny-cpu-lora.yaml"), "--gpus", "1",
                 "--gpu-memory-gib", "80", "--out", str(out / "gate" / "estimate.json")],
        "plan": plan_args(model, out / "plan"),
        "aggregate": ["steps.aggregate", "--eval-dir", str(work / "eval"), "--models",
                      str(work / "plan" / "models.json"), "--subjects", json.dumps([SUBJECT]),
                      "--out-dir", str(out / "summary"), "--run-id", f"bench-{out.name}",
                      "--history", str(out / "history")],
        "upload": ["steps.upload", "--model-dir", model, "--repo-id", "bench/tiny", "--target", str(out / "upload")],
        "merge-lora": ["steps.merge_lora", "--config", str(merge_config(assets, work, out / "merge"))],
        "eval, 1 question": eval_args(assets, out / "eval1", 1),
        "eval, 5 questions": eval_args(assets, out / "eval5", 5),
    }


ADAPTER_CODE = """
import sys
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
               ).save_pretrained(sys.argv[2])
"""


def merge_config(assets: Path, work: Path, run_dir: Path) -> Path:
    """A fresh copy of the adapter (so the merge is done, not found current) and its Axolotl config."""
    import yaml

    shutil.copytree(work / "adapter", run_dir / "output")
    config = yaml.safe_load((ROOT / "configs" / "axolotl" / "tiny-cpu-lora.yaml").read_text(encoding="utf-8"))
    config.update(base_model=str(assets / "tiny-llama"), output_dir=str(run_dir / "output"),
                  dataset_prepared_path=str(run_dir / "prepared"), lora_r=4, lora_alpha=8, lora_modules_to_save=None)
    path = run_dir / "axolotl.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def prepare(assets: Path, work: Path) -> None:
    """The tiny assets, and the eval results and plan aggregate reads."""
    subprocess.run([sys.executable, "-m", "steps.tiny_assets", "--out", str(assets)], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, capture_output=True)
    model = str(assets / "tiny-llama")
    run_cpu_seconds(plan_args(model, work / "plan"))
    subprocess.run([sys.executable, "-c", ADAPTER_CODE, model, str(work / "adapter")], cwd=ROOT, check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True)
    run_cpu_seconds(["steps.convert_dataset", "--source", str(assets / "acereason.parquet"), "--out-dir",
                     str(work / "data")])  # train's dataset
    plan = json.loads((work / "plan" / "models.json").read_text())
    for entry in plan if isinstance(plan, list) else plan.get("models", []):
        run_cpu_seconds(eval_args(assets, work / "eval" / entry["slug"], 2, entry["role"]))


def export_revision(revision: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def budget(name: str, cpu: dict[str, float]) -> str:
    if name in ("convert", "gate", "plan", "aggregate", "upload"):
        return f"< {LIGHT_BUDGET_S} s: {'ok' if cpu[name] < LIGHT_BUDGET_S else 'OVER'}"
    if name == "eval fixed cost":
        return f"< {EVAL_FIXED_BUDGET_S} s: {'ok' if cpu[name] < EVAL_FIXED_BUDGET_S else 'OVER'}"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--compare-with", metavar="GIT_REV", default=None)
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tunebench-startup-"))
    assets = work / "assets"
    prepare(assets, work)
    roots = {"now": ROOT}
    if args.compare_with:
        roots["before"] = export_revision(args.compare_with, work / "before-tree")
    samples: dict[tuple[str, str], list[float]] = {}
    for run in range(args.repeats):
        for side, root in roots.items():
            for name, command in step_commands(assets, work, work / f"{side}-{run}").items():
                samples.setdefault((side, name), []).append(run_cpu_seconds(command, root)[0])
            trained = train_cpu_seconds(train_args(assets, work, work / f"{side}-{run}" / "train"), root)
            for name, seconds in zip(TRAIN_ROWS, trained):
                samples.setdefault((side, name), []).append(seconds)
    cpu = {side: {name: statistics.median(values) for (s, name), values in samples.items() if s == side}
           for side in roots}
    for costs in cpu.values():
        per_question = (costs["eval, 5 questions"] - costs["eval, 1 question"]) / 4
        costs["eval fixed cost"] = costs["eval, 1 question"] - per_question
    names = ["convert", "gate", "plan", "aggregate", "upload", "merge-lora", "eval, 1 question",
             "eval, 5 questions", "eval fixed cost"]
    names.extend(TRAIN_ROWS)
    print(f"CPU seconds, median of {args.repeats} interleaved runs, OMP_NUM_THREADS=1")
    before = f"{'before':>8}{'now/before':>11}" if "before" in cpu else ""
    print(f"{'step':<20}{'now':>8}{before}  budget")
    for name in names:
        now = cpu["now"][name]
        columns = f"{cpu['before'][name]:>8.2f}{now / cpu['before'][name]:>11.2f}" if "before" in cpu else ""
        print(f"{name:<20}{now:>8.2f}{columns}  {budget(name, cpu['now'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
