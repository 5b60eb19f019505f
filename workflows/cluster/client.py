"""Submit, apply, follow and retry a pipeline on an Argo Server, through Hera's WorkflowsService.

What goes to the server is exactly what `tunebench render` prints: the manifests of
`workflows.render.manifests`, parsed into Hera's models, so render, lint, the local runner
and the cluster all see the same objects.
"""
from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from hera.exceptions import HeraException
from hera.workflows import models as m
from hera.workflows.service import WorkflowsService
from pydantic import BaseModel

from steps.contract import pipeline_labels, rebenchmark_cron_name
from workflows.cluster.errors import (
    NAMESPACE_MISSING,
    ClusterError,
    Operation,
    ParameterError,
    server_reply,
    one_line,
    scrub,
    to_cluster_error,
)
from workflows.cluster.settings import ServerSettings
from workflows.config import PipelineConfig, load_pipeline
from workflows.naming import checked_namespace, checked_object_name
from workflows.params import WorkflowParam, benchmark_params, pipeline_params
from workflows.render import manifests

Pipeline = PipelineConfig | str | os.PathLike  # a config, or the path of its YAML

FINISHED = ("Succeeded", "Failed", "Error")
MAX_TRANSIENT_FAILURES = 5
RETRY_TIMEOUT_S = 300.0
_MODELS: dict[str, type[BaseModel]] = {"Workflow": m.Workflow, "WorkflowTemplate": m.WorkflowTemplate, "CronWorkflow": m.CronWorkflow}
# What a list needs, like `argo list` asks for: no node statuses. `spec` stays because Hera's
# Workflow model requires it.
_LIST_FIELDS = ",".join(
    f"items.{path}" for path in (
        "metadata.name", "metadata.namespace", "metadata.creationTimestamp", "metadata.labels", "spec",
        "status.phase", "status.startedAt", "status.finishedAt", "status.progress", "status.message",
    )
) + ",metadata"


@dataclass(frozen=True)
class Submitted:
    """A workflow the server accepted: its generated name and where to see it."""

    name: str
    namespace: str
    url: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Applied:
    """One object of `apply`: action is created, updated, unchanged, would create, would update or not in config."""

    kind: str
    name: str
    namespace: str
    action: str
    url: str
    note: str = ""


class WaitTimeout(ClusterError):
    """The workflow was still running when the wait's time limit ran out."""


class _Session(requests.Session):
    """A requests session with a default timeout (Hera passes none) that remembers the last response."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout
        self.last_response: requests.Response | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        self.last_response = None
        response = super().request(method, url, *args, **kwargs)
        self.last_response = response
        return response


def to_dict(model: Any) -> dict[str, Any]:
    """A Hera model (or a dict) as the plain JSON-shaped dict `render` produces."""
    if isinstance(model, dict):
        return model
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- parameters ---------------------------------------------------------------------------------

def parse_overrides(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """`["base_model=org/x", "gpus=2"]` -> {"base_model": "org/x", "gpus": "2"}."""
    overrides: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"parameter '{item}' is not NAME=VALUE")
        overrides[name.strip()] = value
    return overrides


def check_overrides(params: list[WorkflowParam], overrides: dict[str, str]) -> dict[str, str]:
    """The overrides, after checking names and enums against the pipeline's parameters."""
    known = {param.name: param for param in params}
    for name, value in overrides.items():
        param = known.get(name)
        if param is None:
            raise ParameterError(f"unknown parameter '{name}'; valid: {', '.join(sorted(known))}")
        if param.enum and value not in param.enum:
            raise ParameterError(f"parameter {name}='{value}' is not valid; choose one of: {', '.join(param.enum)}")
    return overrides


def with_overrides(manifest: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """A copy of a manifest whose workflow parameters carry the overridden values."""
    if not overrides:
        return manifest
    manifest = copy.deepcopy(manifest)
    for param in manifest["spec"].get("arguments", {}).get("parameters", []):
        if param["name"] in overrides:
            param["value"] = overrides[param["name"]]
    return manifest


# --- "unchanged" for apply -----------------------------------------------------------------------

def _prune(value: Any) -> Any:
    """Drop what Go's `omitempty` drops on the way back from the server: nulls, empty strings, maps, lists."""
    if isinstance(value, dict):
        pruned = {key: _prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, "", {}, [])}
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


def _comparable(kind: str, data: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, str]]:
    normalised = to_dict(_MODELS[kind].model_validate(data))
    meta = normalised.get("metadata") or {}
    spec = _prune(normalised.get("spec") or {})
    if kind == "CronWorkflow":
        spec.pop("suspend", None)  # an operator's pause from the UI is not configuration
    return spec, meta.get("labels") or {}, meta.get("annotations") or {}


def is_unchanged(kind: str, ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """The server's object equals ours: same spec (after server defaults), our labels and annotations present.

    Labels and annotations the server adds (creator, last-used schedule) do not count.
    """
    our_spec, our_labels, our_notes = _comparable(kind, ours)
    their_spec, their_labels, their_notes = _comparable(kind, theirs)
    return (
        our_spec == their_spec
        and all(their_labels.get(key) == value for key, value in our_labels.items())
        and all(their_notes.get(key) == value for key, value in our_notes.items())
    )


def load(pipeline: Pipeline) -> PipelineConfig:
    """A PipelineConfig as given, or loaded from a path (raises ConfigError)."""
    if isinstance(pipeline, (str, os.PathLike)):
        return load_pipeline(Path(pipeline))
    return pipeline


def _segment(name: str, kind: str) -> str:
    """A `kind` object's name, checked, as one escaped URL path segment.

    Hera puts names into URL paths as they are; checked and escaped, a name like
    `../../workflow-templates/argo/x` can never reach another endpoint with our token.
    """
    return quote(checked_object_name(name, kind), safe="")


def _in_namespace(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest)
    manifest.setdefault("metadata", {})["namespace"] = namespace
    return manifest


# --- the client ----------------------------------------------------------------------------------

@dataclass
class ArgoClient:
    """One Argo Server connection. Every failure surfaces as a `ClusterError` with a one-line message."""

    settings: ServerSettings
    session: requests.Session | None = None
    _service: WorkflowsService = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = _Session(self.settings.timeout)
        self._service = WorkflowsService(
            host=self.settings.server + "/",  # the trailing slash keeps a base path (ARGO_BASE_HREF)
            token=self.settings.authorization,
            verify_ssl=self.settings.verify,
            namespace=self.settings.default_namespace,
            session=self.session,
        )

    @classmethod
    def from_env(cls, **settings: Any) -> ArgoClient:
        """`ArgoClient.from_env(server=..., namespace=..., token=...)`; what is not given comes from ARGO_*."""
        return cls(ServerSettings.resolve(**settings))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> ArgoClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _mapped(self, op: Operation, missing_ok: bool = False) -> Iterator[None]:
        """Map what the call raises to a ClusterError; with `missing_ok`, swallow a 404 of the object itself."""
        secrets = (self.settings.secret, self.settings.authorization)
        try:
            with warnings.catch_warnings():
                # Hera's generated service serialises requests with pydantic's deprecated `.json()`.
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                yield
        except HeraException as error:
            status, message = server_reply(error)
            if missing_ok and status == 404 and not NAMESPACE_MISSING.search(message):
                return
            raise to_cluster_error(error, op, self.settings.server, secrets, self.settings.timeout) from None
        except requests.exceptions.RequestException as error:
            raise to_cluster_error(error, op, self.settings.server, secrets, self.settings.timeout) from None
        except KeyError as error:
            # Hera reads `message` from an error body; a proxy's JSON error has none.
            response = getattr(self.session, "last_response", None)
            if response is None or response.ok or error.args != ("message",):
                raise
            text = scrub(one_line(response.text, 200), secrets)
            raise ClusterError(f"the server at {self.settings.server} answered {response.status_code} to "
                               f"{op.verb} {op.what}: {text}", response.status_code) from None
        except ValueError as error:  # pydantic: a 200 whose body is not an Argo object
            if isinstance(error, (ClusterError, ParameterError)):
                raise
            raise ClusterError(f"the server at {self.settings.server} gave an answer that is not an Argo "
                               f"{op.kind} while trying to {op.verb} {op.what}; is that the Argo Server?") from None

    @contextmanager
    def _timeout(self, seconds: float) -> Iterator[None]:
        session = self.session
        previous = getattr(session, "timeout", None)
        if isinstance(session, _Session):
            session.timeout = seconds
        try:
            yield
        finally:
            if isinstance(session, _Session):
                session.timeout = previous  # type: ignore[assignment]

    def _call(self, op: Operation, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """`fn(*args, namespace=op.namespace, **kwargs)` with errors mapped; None for a missing object if `missing_ok`.

        The namespace is checked (InvalidName) and escaped before anything is sent.
        """
        namespace = quote(checked_namespace(op.namespace), safe="")
        with self._mapped(op, missing_ok):
            return fn(*args, namespace=namespace, **kwargs)
        return None

    # --- pipelines ------------------------------------------------------------------------------

    def namespace_for(self, cfg: Pipeline) -> str:
        return self.settings.namespace_for(load(cfg))

    def submit(self, cfg: Pipeline, parameters: dict[str, str] | None = None,
               dry_run: bool = False) -> Submitted:
        """Create the pipeline's Workflow (a new name, so a new run folder); `dry_run` only lints it on the server."""
        cfg = load(cfg)
        namespace = self.namespace_for(cfg)
        overrides = check_overrides(pipeline_params(cfg), dict(parameters or {}))
        manifest = _in_namespace(with_overrides(manifests(cfg, "workflow")[0], overrides), namespace)
        model = m.Workflow.model_validate(manifest)
        if dry_run:
            op = Operation("lint", "Workflow", manifest["metadata"].get("generateName", cfg.name) + "*", namespace)
            self._call(op, self._service.lint_workflow, m.WorkflowLintRequest(workflow=model, namespace=namespace))
            return Submitted("", namespace, "", ("dry run: the server's lint accepted the Workflow; nothing was created",))
        op = Operation("create", "Workflow", None, namespace)
        created = self._call(op, self._service.create_workflow,
                             m.WorkflowCreateRequest(workflow=model, namespace=namespace))
        name = created.metadata.name
        return Submitted(name, namespace, self.settings.workflow_url(namespace, name))

    def submit_from_template(self, cfg: Pipeline, parameters: dict[str, str] | None = None,
                             benchmark: bool = False) -> Submitted:
        """Submit a Workflow from the applied WorkflowTemplate (the pipeline, or the benchmark-only one)."""
        cfg = load(cfg)
        namespace = self.namespace_for(cfg)
        params = benchmark_params(cfg) if benchmark else pipeline_params(cfg)
        overrides = check_overrides(params, dict(parameters or {}))
        local = manifests(cfg, "template")[1 if benchmark else 0]
        name = local["metadata"]["name"]
        notes: list[str] = []
        applied = self._call(Operation("get", "WorkflowTemplate", name, namespace),
                             self._service.get_workflow_template, _segment(name, "WorkflowTemplate"), missing_ok=True)
        if applied is None:
            raise ClusterError(f"WorkflowTemplate '{name}' is not in namespace '{namespace}'; "
                               "apply it first: tunebench apply PIPELINE.yaml", 404)
        if not is_unchanged("WorkflowTemplate", _in_namespace(local, namespace), to_dict(applied)):
            notes.append(f"the applied WorkflowTemplate '{name}' differs from this pipeline config; "
                         "`tunebench apply` updates it")
        labels = pipeline_labels(cfg.name)
        request = m.WorkflowSubmitRequest(
            namespace=namespace,
            resource_kind="WorkflowTemplate",
            resource_name=name,
            submit_options=m.SubmitOpts(
                generate_name=f"{name}-",
                labels=",".join(f"{key}={value}" for key, value in labels.items()),
                parameters=[f"{key}={value}" for key, value in overrides.items()] or None,
            ),
        )
        created = self._call(Operation("submit from", "WorkflowTemplate", name, namespace),
                             self._service.submit_workflow, request)
        run = created.metadata.name
        return Submitted(run, namespace, self.settings.workflow_url(namespace, run), tuple(notes))

    def apply(self, cfg: Pipeline, dry_run: bool = False) -> list[Applied]:
        """Create or update both WorkflowTemplates and the CronWorkflow; idempotent.

        Templates go first: the server checks the CronWorkflow's template reference.
        `dry_run` reads and lints, and changes nothing.
        """
        cfg = load(cfg)
        namespace = self.namespace_for(cfg)
        wanted = manifests(cfg, "template") + (manifests(cfg, "cron") if cfg.schedule is not None else [])
        results: list[Applied] = []
        for manifest in wanted:
            results.append(self._apply_one(_in_namespace(manifest, namespace), dry_run, results))
        if cfg.schedule is None:
            cron_name = rebenchmark_cron_name(cfg.name)
            existing = self._call(Operation("get", "CronWorkflow", cron_name, namespace),
                                  self._service.get_cron_workflow, _segment(cron_name, "CronWorkflow"),
                                  missing_ok=True)
            if existing is not None:
                results.append(Applied("CronWorkflow", cron_name, namespace, "not in config",
                                       self.settings.cron_url(namespace, cron_name),
                                       "the config has no schedule but the CronWorkflow still runs; "
                                       f"delete it with: argo cron delete {cron_name} -n {namespace}"))
        return results

    def _apply_one(self, manifest: dict[str, Any], dry_run: bool, done: list[Applied]) -> Applied:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        namespace = manifest["metadata"]["namespace"]
        api = _Api.of(self._service, kind)
        url = (self.settings.cron_url if kind == "CronWorkflow" else self.settings.template_url)(namespace, name)
        current = self._call(Operation("get", kind, name, namespace), api.method("get"), _segment(name, kind),
                             missing_ok=True)
        current = to_dict(current) if current is not None else None
        if current is not None and is_unchanged(kind, manifest, current):
            note = "suspended" if (current.get("spec") or {}).get("suspend") else ""
            return Applied(kind, name, namespace, "unchanged", url, note)
        if kind == "CronWorkflow" and current is not None and (current.get("spec") or {}).get("suspend"):
            manifest = copy.deepcopy(manifest)
            manifest["spec"]["suspend"] = True  # keep an operator's pause
        if dry_run:
            skip_lint = kind == "CronWorkflow" and any(
                item.kind == "WorkflowTemplate" and item.action == "would create" for item in done)
            if not skip_lint:
                self._call(Operation("lint", kind, name, namespace), api.method("lint"), api.lint_request(manifest))
            return Applied(kind, name, namespace, "would create" if current is None else "would update", url,
                           "lint skipped: its WorkflowTemplate does not exist yet" if skip_lint else "")
        if current is None:
            self._call(Operation("create", kind, name, namespace), api.method("create"), api.create_request(manifest))
            return Applied(kind, name, namespace, "created", url)
        manifest = copy.deepcopy(manifest)
        manifest["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        self._call(Operation("update", kind, name, namespace), api.method("update"), _segment(name, kind),
                   api.update_request(manifest))
        return Applied(kind, name, namespace, "updated", url)

    # --- workflows by name ------------------------------------------------------------------------

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The workflow with its status (phase, nodes) as a plain dict."""
        namespace = namespace or self.settings.default_namespace
        workflow = self._call(Operation("get", "Workflow", name, namespace), self._service.get_workflow,
                              _segment(name, "Workflow"))
        return to_dict(workflow)

    def wait(self, name: str, namespace: str | None = None, poll_interval: float = 10.0,
             timeout: float | None = None, on_update: Callable[[dict[str, Any]], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
        """Poll until the workflow finishes (Succeeded, Failed or Error); returns its last state.

        A few consecutive network failures or 5xx answers are waited out (a long run outlives
        blips); `timeout` bounds the wait and raises `WaitTimeout`.
        """
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            try:
                workflow = self.get(name, namespace)
                failures = 0
            except ClusterError as error:
                transient = error.status is None or error.status >= 500
                if not transient or failures >= MAX_TRANSIENT_FAILURES:
                    raise
                failures += 1
                workflow = None
            if workflow is not None:
                if on_update is not None:
                    on_update(workflow)
                if phase_of(workflow) in FINISHED:
                    return workflow
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"workflow '{name}' is still {phase_of(workflow) if workflow else 'unknown'} after "
                                  f"{timeout:g}s; follow it with: tunebench status {name}")
            sleep(poll_interval)

    def retry(self, name: str, namespace: str | None = None) -> Submitted:
        """Argo's retry: succeeded nodes are kept, failed and errored ones run again."""
        namespace = namespace or self.settings.default_namespace
        request = m.WorkflowRetryRequest(name=name, namespace=namespace, restart_successful=False)
        # The server deletes the failed pods before it answers: slow for a wide fan-out.
        with self._timeout(max(self.settings.timeout, RETRY_TIMEOUT_S)):
            retried = self._call(Operation("retry", "Workflow", name, namespace), self._service.retry_workflow,
                                 _segment(name, "Workflow"), request)
        return Submitted(retried.metadata.name or name, namespace, self.settings.workflow_url(namespace, name))

    def list_workflows(self, namespace: str | None = None, prefix: str | None = None,
                       limit: int | None = None) -> list[dict[str, Any]]:
        """Workflows in a namespace, newest first; `prefix` keeps one pipeline's runs (all start `<name>-`)."""
        namespace = namespace or self.settings.default_namespace
        listed = self._call(Operation("list", "Workflow", None, namespace), self._service.list_workflows,
                            fields=_LIST_FIELDS)
        items = [to_dict(item) for item in (listed.items or [])]
        if prefix:
            items = [item for item in items if item["metadata"].get("name", "").startswith(prefix)]
        items.sort(key=lambda item: item["metadata"].get("creationTimestamp") or "", reverse=True)
        return items[:limit] if limit else items

    def get_cron(self, cfg: Pipeline) -> dict[str, Any] | None:
        """The pipeline's CronWorkflow as the server has it (schedule, suspended, last run), or None."""
        cfg = load(cfg)
        namespace = self.namespace_for(cfg)
        name = rebenchmark_cron_name(cfg.name)
        cron = self._call(Operation("get", "CronWorkflow", name, namespace), self._service.get_cron_workflow,
                          _segment(name, "CronWorkflow"), missing_ok=True)
        return to_dict(cron) if cron is not None else None


def phase_of(workflow: dict[str, Any] | None) -> str:
    return ((workflow or {}).get("status") or {}).get("phase") or "Pending"


@dataclass(frozen=True)
class _Kind:
    """How the Argo Server API names one kind: its service methods, model, request bodies and their field."""

    methods: str  # `<verb>_<methods>` on WorkflowsService, e.g. get_workflow_template
    model: type[BaseModel]
    create_request: type
    update_request: type
    lint_request: type
    field: str  # the request body's field that holds the object


_KINDS = {
    "WorkflowTemplate": _Kind("workflow_template", m.WorkflowTemplate, m.WorkflowTemplateCreateRequest,
                              m.WorkflowTemplateUpdateRequest, m.WorkflowTemplateLintRequest, "template"),
    "CronWorkflow": _Kind("cron_workflow", m.CronWorkflow, m.CreateCronWorkflowRequest,
                          m.UpdateCronWorkflowRequest, m.LintCronWorkflowRequest, "cron_workflow"),
}


@dataclass(frozen=True)
class _Api:
    """The get / create / update / lint calls of one kind and their request bodies."""

    service: WorkflowsService
    kind: _Kind

    @staticmethod
    def of(service: WorkflowsService, kind: str) -> _Api:
        if kind not in _KINDS:
            raise ValueError(f"apply handles {' and '.join(_KINDS)}, not {kind}")
        return _Api(service, _KINDS[kind])

    def method(self, verb: str) -> Callable[..., Any]:
        """The service's `get`, `create`, `update` or `lint` call for this kind."""
        return getattr(self.service, f"{verb}_{self.kind.methods}")

    def _body(self, request: type, data: dict[str, Any], **extra: Any) -> Any:
        obj = self.kind.model.model_validate(data)
        return request(**{self.kind.field: obj}, namespace=data["metadata"]["namespace"], **extra)

    def create_request(self, data: dict[str, Any]) -> Any:
        return self._body(self.kind.create_request, data)

    def update_request(self, data: dict[str, Any]) -> Any:
        return self._body(self.kind.update_request, data, name=data["metadata"]["name"])

    def lint_request(self, data: dict[str, Any]) -> Any:
        return self._body(self.kind.lint_request, data)


__all__ = ["ArgoClient", "Applied", "Submitted", "WaitTimeout", "is_unchanged", "load",
           "parse_overrides", "check_overrides", "phase_of", "to_dict"]
