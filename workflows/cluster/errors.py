"""Errors a user can act on: one line each, no traceback, the token never in the text."""
from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass

MAX_MESSAGE = 600
_HERA_MESSAGE = re.compile(r"status code (\d{3}) with message: `(.*)`\s*$", re.DOTALL)
NAMESPACE_MISSING = re.compile(r'namespaces? "([^"]+)" not found')


class ClusterError(Exception):
    """Something between us and the Argo Server went wrong; `str()` is one line for the user."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ParameterError(ValueError):
    """A `-p name=value` override that the pipeline's parameters do not accept."""


@dataclass(frozen=True)
class Operation:
    """What we were doing, to word the message: `create WorkflowTemplate 'x' in namespace 'argo'`."""

    verb: str
    kind: str
    name: str | None
    namespace: str

    @property
    def what(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name else f"{self.kind}s"


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    flat = "; ".join(lines)
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def server_reply(error: Exception) -> tuple[int | None, str]:
    """(HTTP status, the server's message) from one of Hera's exceptions."""
    text = str(error)
    match = _HERA_MESSAGE.search(text)
    status = getattr(error, "status_code", None)
    if match:
        return int(match.group(1)), match.group(2).strip()
    return (status if isinstance(status, int) else None), text.strip()


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a requests/urllib3 chain (refused, DNS, certificate, ...)."""
    seen = set()
    current: BaseException = error
    while True:
        seen.add(id(current))
        nested = None
        for candidate in (getattr(current, "reason", None), current.__cause__, current.__context__,
                          *(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))):
            if isinstance(candidate, BaseException) and id(candidate) not in seen:
                nested = candidate
                break
        if nested is None:
            return current
        current = nested


def _connection_reason(error: BaseException) -> str:
    cause = _root_cause(error)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "host name not found"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return "connection timed out"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return cause.verify_message or "certificate verify failed"
    if isinstance(cause, ssl.SSLError):
        return cause.reason or cause.__class__.__name__
    text = str(cause)
    # urllib3 wraps the OS error in a message like "<...>: Failed to establish a new connection: [Errno 111] ..."
    tail = text.rsplit(": ", 1)[-1] if ": " in text else text
    return one_line(tail, 160) or cause.__class__.__name__


def to_cluster_error(error: Exception, op: Operation, server: str, secrets: tuple[str | None, ...] = (),
                     timeout: float | None = None) -> ClusterError:
    """Map a requests or Hera exception to a ClusterError with a message a user can act on."""
    import requests
    from hera.exceptions import HeraException

    def done(message: str, status: int | None = None) -> ClusterError:
        return ClusterError(scrub(one_line(message), secrets), status)

    if isinstance(error, requests.exceptions.SSLError):
        return done(
            f"TLS failure talking to the Argo Server at {server} ({_connection_reason(error)}); "
            "for a self-signed certificate set ARGO_INSECURE_SKIP_VERIFY=true (or --insecure-skip-verify); "
            "for a server without TLS use http:// (or ARGO_SECURE=false)"
        )
    if isinstance(error, requests.exceptions.Timeout):
        limit = f" within {timeout:g}s" if timeout else ""
        return done(f"the Argo Server at {server} did not answer{limit} while trying to {op.verb} {op.what}")
    if isinstance(error, requests.exceptions.ConnectionError):
        return done(
            f"cannot reach the Argo Server at {server} ({_connection_reason(error)}); check --server/ARGO_SERVER, "
            "or forward a local port: kubectl -n argo port-forward svc/argo-server 2746:2746"
        )
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return done(f"the server at {server} did not answer with JSON while trying to {op.verb} {op.what}; "
                    "is that the Argo Server's address (not a login page or another service)?")
    if isinstance(error, requests.exceptions.RequestException):
        return done(f"request to the Argo Server at {server} failed: {error.__class__.__name__}")
    if not isinstance(error, HeraException):
        raise error
    status, message = server_reply(error)
    where = f"in namespace '{op.namespace}'"
    if status == 401:
        hint = ("the token was rejected" if secrets and any(secrets) else "no token was given")
        return done(
            f"the Argo Server at {server} answered 401 Unauthorized ({hint}); set ARGO_TOKEN (or --token) to a valid "
            "token, e.g. ARGO_TOKEN=\"Bearer $(kubectl create token SERVICE_ACCOUNT -n NAMESPACE)\"", 401)
    if status == 403:
        return done(f"not allowed to {op.verb} {op.what} {where} (403 Forbidden): {message}; "
                    "the token's service account needs a Role for this (see docs/cluster.md)", 403)
    if status == 404:
        missing_namespace = NAMESPACE_MISSING.search(message)
        if missing_namespace:
            return done(f"namespace '{missing_namespace.group(1)}' does not exist on the cluster (404); check "
                        "--namespace, ARGO_NAMESPACE or cluster.namespace in the pipeline config", 404)
        hint = "; apply it first: tunebench apply PIPELINE.yaml" if op.kind in ("WorkflowTemplate", "CronWorkflow") else ""
        return done(f"{op.what} not found {where} (404): {message}{hint}", 404)
    if status == 409:
        hint = "; `tunebench apply` updates existing templates" if op.kind != "Workflow" else ""
        return done(f"{op.what} already exists {where} (409 Conflict): {message}{hint}", 409)
    if status == 400:
        return done(f"the Argo Server rejected {op.what} {where}: {message}", 400)
    if status is not None and status >= 500:
        return done(f"the Argo Server failed to {op.verb} {op.what} ({status}): {message}", status)
    return done(f"the Argo Server answered {status or 'an error'} to {op.verb} {op.what}: {message}", status)
