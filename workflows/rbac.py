"""The Kubernetes objects the workflow pods need: a ServiceAccount, a Role, a RoleBinding.

Argo's executor (emissary, v3.4 and later, v4) reports each step's outputs as a
WorkflowTaskResult, so the pods' service account needs `create` and `patch` on
`workflowtaskresults` in `argoproj.io` ("the minimum for the executor to function",
Argo's docs/workflow-rbac.md) and nothing else: the HF token reaches the pods through
a secretKeyRef that the kubelet resolves, and the workflow controller creates the pods
and volume claims with its own account. Multi-node training (`train.nodes > 1`) adds the
verbs its `resource` template and exit handler use on JobSets (workflows/jobset.py).
Nothing privileged, nothing cluster-wide.
"""
from __future__ import annotations

from typing import Any

from steps.contract import pipeline_labels
from workflows.config import PipelineConfig
from workflows.jobset import RBAC_RULE as JOBSET_RULE

EXECUTOR_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
]


def labels(cfg: PipelineConfig) -> dict[str, str]:
    return pipeline_labels(cfg.name)


def _metadata(cfg: PipelineConfig, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": cfg.cluster.namespace, "labels": labels(cfg)}


def role_name(cfg: PipelineConfig) -> str:
    return f"{cfg.cluster.service_account}-executor"


def rbac_manifests(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """ServiceAccount `cluster.service_account`, its executor Role and the RoleBinding, in `cluster.namespace`."""
    account = cfg.cluster.service_account
    role = role_name(cfg)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(cfg, account)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _metadata(cfg, role),
         "rules": [dict(rule) for rule in EXECUTOR_RULES] + ([dict(JOBSET_RULE)] if cfg.train.nodes > 1 else [])},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _metadata(cfg, role),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": cfg.cluster.namespace}]},
    ]


def hf_secret_command(cfg: PipelineConfig) -> str:
    """The `kubectl create secret` line for the HF token; the token comes from $HF_TOKEN, never from a file here."""
    secret = cfg.cluster.hf_token_secret
    return (f"kubectl create secret generic {secret.name} --namespace {cfg.cluster.namespace} "
            f"--from-literal={secret.key}=\"$HF_TOKEN\"")


def rbac_header(cfg: PipelineConfig) -> str:
    """YAML comments above the RBAC objects: how to apply them, and the HF token secret they do not include."""
    return (
        f"# ServiceAccount, Role and RoleBinding for the pods of pipeline '{cfg.name}'.\n"
        "# Apply:  tunebench render PIPELINE.yaml --kind rbac | kubectl apply -f -\n"
        "# The Hugging Face token secret (not rendered: it must never be in a manifest):\n"
        f"#   {hf_secret_command(cfg)}\n"
    )
