"""Where the Argo Server is and how to authenticate, resolved the way the `argo` CLI does.

Precedence: explicit arguments (CLI flags), then the `argo` CLI's environment variables:

| variable | meaning |
|---|---|
| ARGO_SERVER | `host:port` (the argo CLI form) or a full `https://...` URL |
| ARGO_SECURE | `false` means plain HTTP when ARGO_SERVER has no scheme (default: HTTPS) |
| ARGO_BASE_HREF | path prefix when the server sits behind a path, e.g. `/argo` |
| ARGO_TOKEN | `Bearer <token>` or just `<token>` |
| ARGO_NAMESPACE | default namespace |
| ARGO_INSECURE_SKIP_VERIFY | `true` accepts any TLS certificate (self-signed test installs) |

The namespace of a pipeline's objects: `--namespace`, else `cluster.namespace` when the
pipeline config sets it, else ARGO_NAMESPACE, else the config's default (`argo`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from workflows.naming import checked_namespace

if TYPE_CHECKING:
    from workflows.config import PipelineConfig

DEFAULT_NAMESPACE = "argo"
DEFAULT_TIMEOUT_S = 30.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """Server settings that cannot work; the message says which flag or variable to fix."""


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(f"{name}='{value}' is not a boolean; use true or false")


def normalise_server(server: str, secure: bool = True, base_href: str | None = None) -> str:
    """`localhost:2746` -> `https://localhost:2746`; a URL keeps its scheme; no trailing slash."""
    text = server.strip()
    if not text:
        raise SettingsError("the Argo Server address is empty; pass --server URL or set ARGO_SERVER")
    if "://" not in text:
        text = ("https://" if secure else "http://") + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"'{server}' is not an Argo Server address; use host:port or http(s)://host:port")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError("the Argo Server address must not carry credentials, a query or a fragment")
    path = parts.path.rstrip("/")
    if not path and base_href:
        path = "/" + base_href.strip("/") if base_href.strip("/") else ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def normalise_token(token: str | None) -> str | None:
    """The Authorization header value: `Bearer <token>`, whether or not the token had the prefix."""
    if token is None:
        return None
    text = token.strip()
    if not text:
        return None
    scheme, _, rest = text.partition(" ")
    if rest.strip():
        # Already `<scheme> <credentials>`; `bearer` in any case becomes the canonical `Bearer`.
        return ("Bearer" if scheme.lower() == "bearer" else scheme) + " " + rest.strip()
    return "Bearer " + text


@dataclass(frozen=True)
class ServerSettings:
    """A resolved Argo Server connection. `repr()` never shows the token."""

    server: str
    authorization: str | None = field(default=None, repr=False)
    namespace: str | None = None  # from --namespace: wins over everything
    env_namespace: str | None = None  # from ARGO_NAMESPACE: a default below an explicit config namespace
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT_S

    @classmethod
    def resolve(
        cls,
        server: str | None = None,
        namespace: str | None = None,
        token: str | None = None,
        insecure_skip_verify: bool | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> ServerSettings:
        """Arguments first, then ARGO_SERVER, ARGO_TOKEN, ARGO_NAMESPACE, ARGO_INSECURE_SKIP_VERIFY."""
        env = os.environ if env is None else env
        raw_server = server or env.get("ARGO_SERVER")
        if not raw_server:
            raise SettingsError(
                "no Argo Server given: pass --server URL or set ARGO_SERVER "
                "(e.g. ARGO_SERVER=localhost:2746 after `kubectl -n argo port-forward svc/argo-server 2746:2746`)"
            )
        secure = _flag(env.get("ARGO_SECURE"), "ARGO_SECURE")
        insecure = insecure_skip_verify
        if insecure is None:
            insecure = _flag(env.get("ARGO_INSECURE_SKIP_VERIFY"), "ARGO_INSECURE_SKIP_VERIFY") or False
        if timeout <= 0:
            raise SettingsError("the request timeout must be positive")
        flag_namespace = (namespace or "").strip() or None
        env_namespace = (env.get("ARGO_NAMESPACE") or "").strip() or None
        if flag_namespace is not None:
            checked_namespace(flag_namespace, "--namespace")
        if env_namespace is not None:
            checked_namespace(env_namespace, "ARGO_NAMESPACE")
        return cls(
            server=normalise_server(raw_server, secure is not False, env.get("ARGO_BASE_HREF")),
            authorization=normalise_token(token if token is not None else env.get("ARGO_TOKEN")),
            namespace=flag_namespace,
            env_namespace=env_namespace,
            verify=not insecure,
            timeout=timeout,
        )

    @property
    def default_namespace(self) -> str:
        """For commands without a pipeline config (status, retry)."""
        return self.namespace or self.env_namespace or DEFAULT_NAMESPACE

    def namespace_for(self, cfg: PipelineConfig) -> str:
        """--namespace, else an explicit cluster.namespace, else ARGO_NAMESPACE, else the config default."""
        if self.namespace:
            return self.namespace
        if "namespace" in cfg.cluster.model_fields_set:
            return cfg.cluster.namespace
        return self.env_namespace or cfg.cluster.namespace

    @property
    def secret(self) -> str | None:
        """The bare token (without the scheme), only to scrub it from text that might be shown."""
        if not self.authorization:
            return None
        return self.authorization.partition(" ")[2] or self.authorization

    def _ui_url(self, collection: str, namespace: str, name: str) -> str:
        return f"{self.server}/{collection}/{quote(namespace, safe='')}/{quote(name, safe='')}"

    def workflow_url(self, namespace: str, name: str) -> str:
        return self._ui_url("workflows", namespace, name)

    def cron_url(self, namespace: str, name: str) -> str:
        return self._ui_url("cron-workflows", namespace, name)

    def template_url(self, namespace: str, name: str) -> str:
        return self._ui_url("workflow-templates", namespace, name)
