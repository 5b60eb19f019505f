"""Each failure a user can act on gives one line that says what to do, and never the token."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from argo_stub import ArgoStub

from workflows.cluster import ArgoClient, ClusterError, ServerSettings
from workflows.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"
TOKEN = "tok-9f8e7d6c5b4a"


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline(REFERENCE)


@pytest.fixture
def stub():
    with ArgoStub(token=TOKEN, namespaces=("argo",)) as server:
        yield server


def client(server: str, token: str | None = TOKEN, **kwargs) -> ArgoClient:
    return ArgoClient(ServerSettings.resolve(server=server, token=token, env={}, **kwargs))


def failure(call) -> ClusterError:
    with pytest.raises(ClusterError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, "one line"
    assert TOKEN not in message and "Traceback" not in message
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), "no chained traceback"
    return caught.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_unreachable(cfg):
    error = failure(lambda: client(f"http://127.0.0.1:{free_port()}").submit(cfg))
    assert "cannot reach the Argo Server" in str(error) and "connection refused" in str(error)
    assert "port-forward" in str(error)


def test_tls_failure_suggests_the_insecure_switch(stub, cfg):
    # TLS spoken to a plain-HTTP server fails the handshake, as a wrong or self-signed certificate does.
    error = failure(lambda: client(f"https://127.0.0.1:{stub.port}").submit(cfg))
    assert str(error).startswith("TLS failure talking to the Argo Server")
    assert "ARGO_INSECURE_SKIP_VERIFY=true" in str(error)


def test_server_too_slow(stub, cfg):
    stub.delay = 0.5
    error = failure(lambda: client(stub.url, timeout=0.1).get("anything"))
    assert "did not answer within 0.1s" in str(error)


def test_401_with_a_wrong_token_and_without_one(stub, cfg):
    error = failure(lambda: client(stub.url, token="Bearer wrong").submit(cfg))
    assert "401 Unauthorized (the token was rejected)" in str(error) and error.status == 401
    error = failure(lambda: client(stub.url, token=None).submit(cfg))
    assert "(no token was given)" in str(error) and "ARGO_TOKEN" in str(error)


def test_403_shows_what_was_forbidden(stub, cfg):
    stub.inject(403, 'workflows.argoproj.io is forbidden: User "system:serviceaccount:argo:ci" cannot create '
                     'resource "workflows" in API group "argoproj.io" in the namespace "argo"')
    error = failure(lambda: client(stub.url).submit(cfg))
    assert str(error).startswith("not allowed to create Workflows in namespace 'argo' (403 Forbidden)")
    assert "cannot create resource" in str(error)


def test_unknown_namespace(stub, cfg):
    error = failure(lambda: client(stub.url, namespace="nope").submit(cfg))
    assert str(error).startswith("namespace 'nope' does not exist on the cluster")
    error = failure(lambda: client(stub.url, namespace="nope").apply(cfg))
    assert "namespace 'nope' does not exist" in str(error)


def test_409_already_exists(stub, cfg):
    argo = client(stub.url)
    argo.apply(cfg)
    stub.objects.pop(("workflow-templates", "argo", cfg.name))
    stub.inject(409, f'workflowtemplates.argoproj.io "{cfg.name}" already exists', method="POST")
    error = failure(lambda: argo.apply(cfg))  # someone created it between our get and our create
    assert f"WorkflowTemplate '{cfg.name}' already exists in namespace 'argo' (409 Conflict)" in str(error)


def test_manifest_rejected_by_the_servers_lint_shows_its_message(stub, cfg):
    message = "templates.train.container.resources: quantities must match the regular expression"
    stub.inject(400, message, method="POST", path_contains="/lint")
    error = failure(lambda: client(stub.url).submit(cfg, dry_run=True))
    assert str(error) == f"the Argo Server rejected Workflow '{cfg.name}-*' in namespace 'argo': {message}"
    stub.inject(400, "spec.entrypoint: pipeline not found", method="POST", path_contains="/workflow-templates/")
    error = failure(lambda: client(stub.url).apply(cfg))
    assert f"rejected WorkflowTemplate '{cfg.name}'" in str(error) and "pipeline not found" in str(error)


def test_server_errors_and_non_argo_answers(stub, cfg):
    argo = client(stub.url)
    stub.inject(500, "etcdserver: request timed out\nretry later")
    error = failure(lambda: argo.get("wf-1"))
    assert str(error) == "the Argo Server failed to get Workflow 'wf-1' (500): etcdserver: request timed out; retry later"
    stub.inject(404, raw="<html><body><h1>404 Not Found</h1>\n<p>nginx</p></body></html>")
    error = failure(lambda: argo.get("wf-1"))
    assert "Workflow 'wf-1' not found" in str(error) and "nginx" in str(error)
    stub.inject(502, raw='{"error": "upstream connect error"}')
    error = failure(lambda: argo.get("wf-1"))
    assert "answered 502" in str(error) and "upstream connect error" in str(error)
    stub.inject(200, raw="<html>Argo login</html>")
    error = failure(lambda: argo.get("wf-1"))
    assert "did not answer with JSON" in str(error)
    stub.inject(200, raw='{"kind": "Status"}')
    error = failure(lambda: argo.get("wf-1"))
    assert "not an Argo Workflow" in str(error)


def test_missing_workflow_and_template(stub, cfg):
    argo = client(stub.url)
    error = failure(lambda: argo.get("gone-123"))
    assert str(error).startswith("Workflow 'gone-123' not found in namespace 'argo' (404)")
    error = failure(lambda: argo.submit_from_template(cfg))
    assert "apply it first: tunebench apply PIPELINE.yaml" in str(error)


def test_a_token_echoed_by_the_server_is_masked(stub, cfg):
    stub.inject(400, f"bad header Authorization: Bearer {TOKEN}")
    error = failure(lambda: client(stub.url).submit(cfg))
    assert "Bearer ***" in str(error)
