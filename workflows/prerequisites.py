"""Every Kubernetes object a pipeline's pods need before the first run, for one `kubectl apply`.

The pods' ServiceAccount, Role and RoleBinding (workflows/rbac.py); the PriorityClass that
`train.priority_class_name` names (without it the API server refuses the train pod); the
PersistentVolumeClaims the config names as existing claims (claims made per run by a
claim template need nothing beforehand). The HF token secret is never rendered.
"""
from __future__ import annotations

from typing import Any

from steps.contract import APP_LABEL, APP_NAME
from workflows.config import PipelineConfig, VolumeSpec
from workflows.rbac import hf_secret_command, rbac_manifests

# Pipelines may share the PriorityClass and the claims: no pipeline label on them.
SHARED_LABELS = {APP_LABEL: APP_NAME}


def priority_class(cfg: PipelineConfig) -> dict[str, Any] | None:
    """Training queues ahead of eval pods but evicts nothing: preemptionPolicy Never, since on a
    shared cluster a higher priority that preempts would also evict other teams' pods."""
    name = cfg.train.priority_class_name
    if name is None:
        return None
    return {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name, "labels": dict(SHARED_LABELS)},
        "value": cfg.train.priority_class_value, "globalDefault": False, "preemptionPolicy": "Never",
        "description": "tunebench training pods: scheduled before the eval pods queued beside them, evicting nothing",
    }


def _claim(cfg: PipelineConfig, spec: VolumeSpec | None) -> dict[str, Any] | None:
    if spec is None or spec.existing_claim is None:
        return None
    create = spec.create_as
    claim_spec: dict[str, Any] = {"accessModes": [create.access_mode], "resources": {"requests": {"storage": create.size}}}
    if create.storage_class is not None:
        claim_spec["storageClassName"] = create.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": spec.existing_claim, "namespace": cfg.cluster.namespace, "labels": dict(SHARED_LABELS)},
            "spec": claim_spec}


def prerequisite_manifests(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """RBAC, then the PriorityClass and the existing claims the config names (those it names only)."""
    optional = [priority_class(cfg), _claim(cfg, cfg.cluster.workspace), _claim(cfg, cfg.cluster.hf_cache)]
    return rbac_manifests(cfg) + [document for document in optional if document is not None]


def prerequisites_header(cfg: PipelineConfig) -> str:
    return (
        f"# Everything the pods of pipeline '{cfg.name}' need before the first run: RBAC, the PriorityClass\n"
        "# and the existing claims the config names (Kubernetes refuses to change a claim's class or access mode\n"
        "# once it exists; it only lets its size grow).\n"
        "# Apply:  tunebench render PIPELINE.yaml --kind prerequisites | kubectl apply -f -\n"
        "# The Hugging Face token secret (not rendered: it must never be in a manifest):\n"
        f"#   {hf_secret_command(cfg)}\n"
    )
