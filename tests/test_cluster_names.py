"""Issue 11 item 8: names that reach Argo Server URLs are checked, and escaped, before anything is sent."""
from __future__ import annotations

from pathlib import Path

import pytest
from argo_stub import ArgoStub
from typer.testing import CliRunner

from workflows.cli import app
from workflows.cluster import client as client_module
from workflows.cluster.client import ArgoClient
from workflows.naming import InvalidName

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
HOSTILE_NAMES = ["../../workflow-templates/argo/smoke", "a/b", "x?y#", "UPPER", "name\nsecond", "%2e%2e", ""]
HOSTILE_NAMESPACES = ["../../x?y#", "..", "argo/../kube-system", "Argo", "a" * 64, "argo\nkube-system"]


@pytest.fixture
def stub(monkeypatch):
    for variable in ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_INSECURE_SKIP_VERIFY", "ARGO_SECURE",
                     "ARGO_BASE_HREF"):
        monkeypatch.delenv(variable, raising=False)
    with ArgoStub(token="names-token-31") as server:
        monkeypatch.setenv("ARGO_SERVER", server.url)
        monkeypatch.setenv("ARGO_TOKEN", server.token)
        yield server


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


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
