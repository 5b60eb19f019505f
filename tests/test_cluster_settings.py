"""Server settings resolve like the argo CLI's: flags, then ARGO_SERVER, ARGO_TOKEN, ARGO_NAMESPACE, ..."""
from __future__ import annotations

from pathlib import Path

import pytest

from workflows.cluster.settings import ServerSettings, SettingsError, normalise_server, normalise_token
from workflows.config import load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"


@pytest.mark.parametrize(("given", "secure", "base", "expected"), [
    ("localhost:2746", True, None, "https://localhost:2746"),
    ("localhost:2746", False, None, "http://localhost:2746"),
    ("https://argo.example.com/", True, None, "https://argo.example.com"),
    ("http://10.0.0.5:2746", True, None, "http://10.0.0.5:2746"),
    ("argo.example.com", True, "/argo/", "https://argo.example.com/argo"),
    ("https://example.com/argo/", True, "/ignored", "https://example.com/argo"),
])
def test_server_address_like_the_argo_cli(given, secure, base, expected):
    assert normalise_server(given, secure, base) == expected


@pytest.mark.parametrize("bad", ["", "ftp://host", "https://user:pw@host", "https://host/?token=x"])
def test_bad_server_addresses_are_refused(bad):
    with pytest.raises(SettingsError):
        normalise_server(bad)


@pytest.mark.parametrize(("given", "expected"), [
    ("abc.def", "Bearer abc.def"),
    ("Bearer abc.def", "Bearer abc.def"),
    ("bearer abc.def", "Bearer abc.def"),
    ("  Bearer   v2:xyz  ", "Bearer v2:xyz"),
    ("", None),
    (None, None),
])
def test_token_with_or_without_bearer(given, expected):
    assert normalise_token(given) == expected


def test_environment_is_read_like_the_argo_cli():
    env = {"ARGO_SERVER": "argo.internal:2746", "ARGO_TOKEN": "s3cret", "ARGO_NAMESPACE": "ml",
           "ARGO_INSECURE_SKIP_VERIFY": "true"}
    settings = ServerSettings.resolve(env=env)
    assert settings.server == "https://argo.internal:2746"
    assert settings.authorization == "Bearer s3cret"
    assert settings.secret == "s3cret"
    assert settings.verify is False
    assert settings.default_namespace == "ml"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)


def test_arguments_win_over_the_environment():
    env = {"ARGO_SERVER": "env:1", "ARGO_TOKEN": "env-token", "ARGO_NAMESPACE": "env-ns",
           "ARGO_INSECURE_SKIP_VERIFY": "true"}
    settings = ServerSettings.resolve(server="http://flag:2", token="Bearer flag-token", namespace="flag-ns",
                                      insecure_skip_verify=False, env=env)
    assert (settings.server, settings.authorization, settings.default_namespace, settings.verify) == \
        ("http://flag:2", "Bearer flag-token", "flag-ns", True)


def test_argo_secure_false_means_plain_http():
    assert ServerSettings.resolve(env={"ARGO_SERVER": "h:2746", "ARGO_SECURE": "false"}).server == "http://h:2746"


def test_missing_server_and_bad_booleans_say_what_to_set():
    with pytest.raises(SettingsError, match="ARGO_SERVER"):
        ServerSettings.resolve(env={})
    with pytest.raises(SettingsError, match="ARGO_INSECURE_SKIP_VERIFY"):
        ServerSettings.resolve(env={"ARGO_SERVER": "h:1", "ARGO_INSECURE_SKIP_VERIFY": "maybe"})


def test_namespace_precedence_flag_then_config_then_environment():
    explicit = load_pipeline(REFERENCE)  # sets cluster.namespace: argo
    assert "namespace" in explicit.cluster.model_fields_set
    implicit = parse_pipeline({k: v for k, v in _reference_dict().items() if k not in ("cluster", "schedule")})
    env = {"ARGO_SERVER": "h:1", "ARGO_NAMESPACE": "from-env"}
    settings = ServerSettings.resolve(env=env)
    assert settings.namespace_for(explicit) == "argo"        # the config says so
    assert settings.namespace_for(implicit) == "from-env"    # the config is silent
    flagged = ServerSettings.resolve(namespace="flag", env=env)
    assert flagged.namespace_for(explicit) == flagged.namespace_for(implicit) == "flag"
    assert ServerSettings.resolve(env={"ARGO_SERVER": "h:1"}).namespace_for(implicit) == "argo"


def test_ui_links():
    settings = ServerSettings.resolve(server="https://argo.example.com/", env={})
    assert settings.workflow_url("ml", "wf-abc") == "https://argo.example.com/workflows/ml/wf-abc"


def _reference_dict() -> dict:
    import yaml

    return yaml.safe_load(REFERENCE.read_text())
