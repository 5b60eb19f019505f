"""Going to a cluster: submit, apply, follow and retry a pipeline on an Argo Server.

```python
from workflows.cluster import ArgoClient
from workflows.config import load_pipeline

cfg = load_pipeline("configs/pipelines/gemma2-2b-acereason-math.yaml")
with ArgoClient.from_env(server="https://argo.example.com") as argo:   # token etc. from ARGO_*
    argo.apply(cfg)                                     # templates + cron: created / updated / unchanged
    run = argo.submit(cfg, {"eval_limit": "20"})        # -> Submitted(name, namespace, url)
    final = argo.wait(run.name, run.namespace)          # polls until Succeeded / Failed / Error
```
Names resolve lazily so that importing `workflows.cluster.commands` (the CLI) stays light.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.cluster.client import Applied, ArgoClient, Submitted, WaitTimeout
    from workflows.cluster.errors import ClusterError, ParameterError
    from workflows.cluster.settings import ServerSettings, SettingsError

_EXPORTS = {
    "ArgoClient": "client", "Applied": "client", "Submitted": "client", "WaitTimeout": "client",
    "ClusterError": "errors", "ParameterError": "errors",
    "ServerSettings": "settings", "SettingsError": "settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workflows.cluster' has no attribute '{name}'")
    return getattr(importlib.import_module(f"workflows.cluster.{module}"), name)
