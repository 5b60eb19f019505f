"""steps/contract.py is the one home of the names builders, steps, the runner and the status view share.

The guard below reads every string literal in workflows/, steps/ and the tests' step stand-ins
(f-string pieces included, docstrings and prose left out) and fails when one spells a contract
literal that steps/contract.py already names: a file or folder of a run, a mount path, a label,
an object name suffix, a copy of the subject list, the repo-id pattern, or an exit code given
as a number to typer.Exit, SystemExit or fail. The other tests spell the layout out on
purpose: they pin what users and the docs see, so a change to the contract shows up in them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from steps import contract

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_FILE = ROOT / "steps" / "contract.py"
# The code, and the tests' stand-ins for the heavy steps, which write what those steps write.
SCANNED = sorted({*(ROOT / "workflows").rglob("*.py"), *(ROOT / "steps").rglob("*.py"),
                  ROOT / "tests" / "pipeline_stand_ins.py"} - {CONTRACT_FILE})

# A path component (or its tail) that must come from the contract.
FILE_NAMES = (contract.TRAIN_PARQUET, contract.HOLDOUT_PARQUET, contract.DATASET_STATS, contract.ESTIMATE_JSON,
              contract.FINAL_AXOLOTL_CONFIG, contract.TRAIN_DONE, contract.TRAIN_REQUEST, contract.MERGED_RECORD,
              contract.plan_file(contract.BASELINE_ITEMS), contract.plan_file(contract.FINETUNED_ITEMS),
              contract.plan_file(contract.PLANNED_MODELS), contract.SUBJECT_SUMMARY_SUFFIX,
              contract.SUMMARY_JSON, contract.SUMMARY_MD, contract.SCORES_PNG, contract.TREND_PNG,
              contract.SUMMARY_ID)
# Anywhere inside a literal, messages included (they stay true when the contract changes).
EMBEDDED = (contract.WORKSPACE_MOUNT, contract.HF_CACHE_MOUNT, contract.HISTORY_FOLDER, contract.APP_LABEL,
            contract.PIPELINE_LABEL, contract.REPO_ID.pattern)
# A whole literal (or a whole f-string piece).
WHOLE = (contract.BASELINE_ITEMS, contract.FINETUNED_ITEMS, contract.benchmark_template_name(""),
         contract.rebenchmark_cron_name(""))
SUBJECT_LIST = "the MMLU-Pro subject list"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def contract_literal(value: str) -> str | None:
    """The contract literal `value` spells, if any (prose, which has spaces, may name files)."""
    if value in WHOLE:
        return value
    for literal in EMBEDDED:
        if literal in value:
            return literal
    if any(space in value for space in " \n\t"):
        return None
    parts = PurePosixPath(value).parts
    for name in FILE_NAMES:
        if any(part == name or (name.startswith(".") and part.endswith(name)) for part in parts):
            return name
    return None


def _lists_subjects(node: ast.AST) -> bool:
    """A tuple, list or set display naming two subjects or more: a copy of the subject list."""
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return False
    named = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in contract.SUBJECTS]
    return len(named) >= 2


EXITS = ("Exit", "SystemExit", "exit", "fail", "_fail")  # typer.Exit, sys.exit, steps.common.fail, ...


def _numbered_exit(node: ast.AST) -> int | None:
    """The exit code a call like `typer.Exit(2)` or `fail(message, 1 if x else 2)` spells as a number."""
    if not isinstance(node, ast.Call):
        return None
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    if name not in EXITS:
        return None
    for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
        choices = [argument.body, argument.orelse] if isinstance(argument, ast.IfExp) else [argument]
        for choice in choices:
            if isinstance(choice, ast.Constant) and type(choice.value) is int:
                return choice.value
    return None


def repeated_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for each constant in `source` that repeats a contract literal."""
    tree = ast.parse(source)
    skipped = _docstrings(tree)
    strings = [(node.lineno, literal) for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped
               and (literal := contract_literal(node.value)) is not None]
    exits = [(node.lineno, f"exit code {code}") for node in ast.walk(tree) if (code := _numbered_exit(node)) is not None]
    return strings + exits + [(node.lineno, SUBJECT_LIST) for node in ast.walk(tree) if _lists_subjects(node)]


def test_no_contract_literal_outside_the_contract() -> None:
    repeated = [f"{path.relative_to(ROOT)}:{line}: {literal!r}"
                for path in SCANNED for line, literal in repeated_literals(path.read_text(encoding="utf-8"))]
    assert not repeated, "use the name in steps/contract.py instead of the literal:\n" + "\n".join(repeated)


@pytest.mark.parametrize("source, literal", [
    ('out = run / "summary.json"', "summary.json"),
    ('path = f"{run}/gate/estimate.json"', "estimate.json"),
    ('path = f"{folder}/{subject}.summary.json"', ".summary.json"),
    ('name = f"{cfg.name}-rebenchmark"', "-rebenchmark"),
    ('labels = {"app.kubernetes.io/name": "tunebench"}', "app.kubernetes.io/name"),
    ('mount = "/mnt/workspace/hf-cache"', "/mnt/workspace"),
    ('message = "the DAG uses /mnt/workspace/history/mmlu-pro"', "/mnt/workspace"),
    ('SUBJECTS = ("biology", "law")', SUBJECT_LIST),
    ('REPO = re.compile(r"[\\w.-]+/[\\w.-]+")', r"[\w.-]+/[\w.-]+"),
    ("raise typer.Exit(2)", "exit code 2"),
    ("raise typer.Exit(0 if ok else 1)", "exit code 0"),
    ("fail(str(error), code=3)", "exit code 3"),
])
def test_the_guard_finds_each_kind_of_literal(source: str, literal: str) -> None:
    assert [found for _, found in repeated_literals(source)] == [literal]


@pytest.mark.parametrize("source", [
    '"""Reads RUN/summary/summary.json."""',
    'help = "Folder for <subject>.jsonl and <subject>.summary.json."',
    'raise ValueError(f"{path}: not the summary.json aggregate wrote")',
    'outputs = "outputs"',
    'app.command("history")',
    "sys.exit(main(sys.argv[1:]))",
])
def test_the_guard_leaves_prose_and_generic_words(source: str) -> None:
    assert repeated_literals(source) == []


def test_run_folder_spells_the_documented_layout() -> None:
    # docs/design.md, "Paths inside the pods": what the builders pass to the steps.
    run = contract.run_folder(contract.WORKSPACE_MOUNT, "{{workflow.name}}")
    assert run.root == "/mnt/workspace/runs/{{workflow.name}}"
    assert run.train_parquet == f"{run.root}/data/train.parquet"
    assert run.estimate == f"{run.root}/gate/estimate.json"
    assert run.final_axolotl_config == f"{run.root}/train/axolotl.yaml"
    assert run.merged_model == f"{run.root}/train/output/merged"
    assert run.plan_file(contract.BASELINE_ITEMS) == f"{run.root}/eval/plan/baseline-items.json"
    assert run.plan_file(contract.PLANNED_MODELS) == f"{run.root}/eval/plan/models.json"
    assert (run.summary_json, run.summary_id) == (f"{run.root}/summary/summary.json", f"{run.root}/summary/summary.id")
    assert contract.HISTORY_DIR == "/mnt/workspace/history/mmlu-pro"


def test_verdict_exit_codes_are_the_ones_no_retry_changes() -> None:
    assert contract.VERDICT_EXIT_CODES == (contract.EXIT_BAD_INPUT, contract.EXIT_GATE_CLOSED, contract.EXIT_REGRESSION)
    assert contract.EXIT_FAILURE not in contract.VERDICT_EXIT_CODES


def test_the_contract_imports_nothing_beyond_the_standard_library() -> None:
    # Every image imports it, and `workflows` must not pull a step's dependencies through it.
    code = ("import sys; before = set(sys.modules); import steps.contract; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    third_party = [name for name in loaded.stdout.split()
                   if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "steps"]
    assert third_party == []
