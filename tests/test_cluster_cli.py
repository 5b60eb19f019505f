"""`tunebench submit | apply | status | retry` against the loopback Argo Server."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from argo_stub import ArgoStub
from typer.testing import CliRunner

from workflows.cli import app
from workflows.cluster import client as client_module
from workflows.cluster.client import ArgoClient
from workflows.naming import InvalidName

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
NAME = "gemma2-2b-acereason-math"
FAST = ["--poll-interval", "0.01", "--wait-timeout", "60"]


@pytest.fixture
def stub(monkeypatch):
    for variable in ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_INSECURE_SKIP_VERIFY", "ARGO_SECURE",
                     "ARGO_BASE_HREF"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    with ArgoStub(token="cli-token-77aa") as server:
        monkeypatch.setenv("ARGO_SERVER", server.url)
        monkeypatch.setenv("ARGO_TOKEN", server.token)
        yield server


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean(result, token: str) -> None:
    assert "Traceback" not in result.output and token not in result.output


def test_submit_prints_the_name_and_the_ui_link(stub):
    result = run("submit", REFERENCE)
    assert result.exit_code == 0, result.output
    name = re.search(rf"submitted ({NAME}-\w+) to namespace argo", result.stdout).group(1)
    assert f"{stub.url}/workflows/argo/{name}" in result.stdout
    quiet = run("submit", REFERENCE, "-q")
    assert re.fullmatch(rf"{NAME}-\w+\n", quiet.stdout)
    assert_clean(result, stub.token)


def test_submit_wait_follows_to_success(stub):
    result = run("submit", REFERENCE, "--wait", *FAST)
    assert result.exit_code == 0, result.output
    assert "train: Running" in result.stdout and "train: Succeeded" in result.stdout
    assert re.search(r"eval-baseline: Succeeded 2/2", result.stdout)
    # the stub's clock: 7m05s per DAG level, 8 levels (convert ... aggregate, publish-scores, verdict)
    assert re.search(rf"{NAME}-\w+ Succeeded in 56m40s", result.stdout)


def test_submit_wait_exits_1_with_the_failed_nodes_message(stub):
    stub.fail_task = {"train": "OOMKilled (exit code 137)"}
    result = run("submit", REFERENCE, "--wait", *FAST)
    assert result.exit_code == 1
    assert re.search(rf"error: workflow {NAME}-\w+ Failed", result.stderr)
    assert "  train: OOMKilled (exit code 137)" in result.stderr
    assert "tunebench retry" in result.stderr
    assert_clean(result, stub.token)


def test_submit_wait_timeout_leaves_the_workflow_running(stub):
    result = run("submit", REFERENCE, "--wait", *FAST, "--wait-timeout", "0.01")
    assert result.exit_code == 1 and "still Running" in result.stderr and "tunebench status" in result.stderr


def test_submit_from_template_with_parameter_overrides(stub):
    assert run("apply", REFERENCE).exit_code == 0
    result = run("submit", REFERENCE, "--from-template", "-p", "base_model=google/gemma-2-9b", "-p", "gpus=2")
    assert result.exit_code == 0, result.output
    (submit,) = stub.calls("POST", "/submit")
    assert submit.json["submitOptions"]["parameters"] == ["base_model=google/gemma-2-9b", "gpus=2"]
    bench = run("submit", REFERENCE, "--benchmark", "-p", "eval_limit=20")
    assert bench.exit_code == 0, bench.output
    assert stub.calls("POST", "/submit")[1].json["resourceName"] == f"{NAME}-benchmark"


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "gpu=2"], "unknown parameter 'gpu'"),
    (["-p", "gpus"], "is not NAME=VALUE"),
    (["-p", "eval_engine=tgi"], "choose one of: vllm, hf"),
    (["--dry-run", "--wait"], "does not combine"),
])
def test_bad_submit_input_exits_2_before_any_request(stub, args, message):
    result = run("submit", REFERENCE, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert stub.requests == []


def test_submit_dry_run_lints_on_the_server(stub):
    result = run("submit", REFERENCE, "--dry-run")
    assert result.exit_code == 0 and "lint accepted" in result.stderr
    assert [r.path for r in stub.calls("POST")] == ["/api/v1/workflows/argo/lint"]


def test_apply_says_created_updated_unchanged(stub, tmp_path):
    first = run("apply", REFERENCE)
    assert first.exit_code == 0, first.output
    assert f"WorkflowTemplate {NAME}: created" in first.stdout
    assert f"WorkflowTemplate {NAME}-benchmark: created" in first.stdout
    assert f"CronWorkflow {NAME}-rebenchmark: created" in first.stdout
    second = run("apply", REFERENCE)
    assert second.stdout.count(": unchanged") == 3
    data = yaml.safe_load(REFERENCE.read_text())
    data["eval"]["limit"] = 50
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    dry = run("apply", changed, "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.count(": would update") == 2  # the cron only names the template
    assert f"CronWorkflow {NAME}-rebenchmark: unchanged" in dry.stdout
    third = run("apply", changed)
    assert third.stdout.count(": updated") == 2
    assert_clean(third, stub.token)


def test_status_shows_the_node_tree(stub):
    stub.fail_task = {"train": "OOMKilled (exit code 137)"}
    name = run("submit", REFERENCE, "-q").stdout.strip()
    assert run("status", name, "--wait", *FAST).exit_code == 1
    result = run("status", name)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (f"Name       {name}", "Phase      Failed", "convert-dataset  Succeeded  7m05s",
                     "train  Failed  7m05s  OOMKilled (exit code 137)", "merge-lora  Omitted",
                     f"{stub.url}/workflows/argo/{name}"):
        assert expected in out
    assert "├──" in out or "└──" in out


def test_status_without_a_name_lists_runs_and_the_cron(stub):
    run("apply", REFERENCE)
    name = run("submit", REFERENCE, "-q").stdout.strip()
    result = run("status", "--pipeline", REFERENCE)
    assert result.exit_code == 0, result.output
    assert name in result.stdout and f"cron {NAME}-rebenchmark: 0 3 * * 1 UTC" in result.stdout


def test_retry_reruns_the_failed_steps(stub):
    stub.fail_task = {"verdict": "Error (exit code 4)"}
    name = run("submit", REFERENCE, "-q").stdout.strip()
    failed = run("status", name, "--wait", *FAST)
    assert failed.exit_code == 1 and "verdict: Error (exit code 4) -> score regression" in failed.stderr
    result = run("retry", name, "--wait", *FAST)
    assert result.exit_code == 0, result.output
    assert f"retrying {name}" in result.stdout and f"{name} Succeeded" in result.stdout


def test_cluster_errors_are_one_line_on_stderr(stub):
    result = run("submit", REFERENCE, "--token", "flag-token-31337")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: the Argo Server at")
    assert "flag-token-31337" not in result.output
    result = run("status", "does-not-exist")
    assert result.exit_code == 1 and "Workflow 'does-not-exist' not found in namespace 'argo'" in result.stderr
    result = run("retry", "x", "--server", "http://127.0.0.1:1")
    assert result.exit_code == 1 and "cannot reach the Argo Server at http://127.0.0.1:1" in result.stderr
    assert_clean(result, stub.token)


def test_no_server_configured_exits_2(stub, monkeypatch):
    monkeypatch.delenv("ARGO_SERVER")
    result = run("apply", REFERENCE)
    assert result.exit_code == 2 and "set ARGO_SERVER" in result.stderr
    assert stub.requests == []


def test_help_lists_the_cluster_commands():
    result = run("--help")
    for command in ("submit", "apply", "status", "retry"):
        assert command in result.stdout


def test_cluster_commands_do_not_import_the_cli_that_registers_them():
    """`workflows.cli` imports the cluster commands; an import back (even a lazy one) would be a cycle."""
    import ast

    source = ROOT / "workflows" / "cluster" / "commands.py"
    imported = {node.module for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Import) for alias in node.names}
    assert "workflows.cli" not in imported and "workflows.cli_common" in imported


# --- issue 11 item 8: names that reach Argo Server URLs are checked, and escaped, before anything is sent ---

HOSTILE_NAMES = ["../../workflow-templates/argo/smoke", "a/b", "x?y#", "UPPER", "name\nsecond", "%2e%2e", ""]
HOSTILE_NAMESPACES = ["../../x?y#", "..", "argo/../kube-system", "Argo", "a" * 64, "argo\nkube-system"]


def assert_refused_in_one_line(result, stub: ArgoStub, mentions: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0], result.stderr
    assert "Traceback" not in result.output and stub.token not in result.output
    assert stub.requests == []  # nothing reached the server, so the token went nowhere


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("command", ["retry", "status"])
def test_item8_hostile_workflow_names_are_refused_before_any_request(stub, command, name):
    assert_refused_in_one_line(run(command, name), stub, "Workflow name")


@pytest.mark.parametrize("namespace", HOSTILE_NAMESPACES)
@pytest.mark.parametrize("command", [("retry", "wf-1"), ("status", "wf-1"), ("status",), ("submit", REFERENCE),
                                     ("apply", REFERENCE)])
def test_item8_hostile_namespaces_are_refused_before_any_request(stub, command, namespace):
    assert_refused_in_one_line(run(*command, "-n", namespace), stub, "--namespace")


def test_item8_hostile_argo_namespace_variable_is_refused(stub, monkeypatch):
    monkeypatch.setenv("ARGO_NAMESPACE", "../../x?y#")
    assert_refused_in_one_line(run("status", "wf-1"), stub, "ARGO_NAMESPACE")


@pytest.mark.parametrize("call", [
    lambda argo: argo.get("../../workflow-templates/argo/smoke"),
    lambda argo: argo.retry("ok-name", namespace="../../x?y#"),
    lambda argo: argo.list_workflows(namespace="kube-system/../x"),
    lambda argo: argo.wait("a/b", poll_interval=0.01, timeout=1),
])
def test_item8_the_client_refuses_hostile_names_itself(stub, call):
    with ArgoClient.from_env() as argo, pytest.raises(InvalidName):
        call(argo)
    assert stub.requests == []


def test_item8_path_segments_are_escaped_even_past_the_name_check(stub, monkeypatch):
    """Escaping is the second wall: were a name to pass the check, it still stays one path segment."""
    monkeypatch.setattr(client_module, "checked_object_name", lambda name, kind: name)
    with ArgoClient.from_env() as argo:
        with pytest.raises(Exception):  # noqa: B017 - the stub answers 404; only the path matters here
            argo.retry("../../workflow-templates/argo/smoke")
    (sent,) = stub.requests
    assert sent.path == "/api/v1/workflows/argo/..%2F..%2Fworkflow-templates%2Fargo%2Fsmoke/retry"


def test_item8_valid_names_still_work(stub):
    assert run("status", "no-such-workflow.v2", "-n", "argo").exit_code == 1  # reached the server: 404
    assert stub.calls("GET", "/api/v1/workflows/argo/no-such-workflow.v2")


@pytest.mark.parametrize(("content", "expected"), [
    (b"name: caf\xe9\n", "not UTF-8 text"),
    (b"name: a\nname: b\n", "duplicate key 'name'"),
    (b"x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
        b"x%d: &a%d [%s]\n" % (i, i, b", ".join([b"*a" if i == 1 else b"*a%d" % (i - 1)] * 10)) for i in range(1, 9)),
     "expands to more than"),
])
@pytest.mark.parametrize("command", [("submit",), ("submit", "--dry-run"), ("apply",), ("status", "--pipeline")])
def test_item10_hostile_config_files_never_reach_the_server(stub, tmp_path, command, content, expected):
    config = tmp_path / "hostile.yaml"
    config.write_bytes(content)
    result = run(*command, config)
    assert result.exit_code == 2 and expected in result.stderr, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert stub.requests == []
