"""A loopback Argo Server for the tests: the REST endpoints tunebench uses, and their failures.

Binds 127.0.0.1 on an ephemeral port, in a daemon thread; every request is recorded
(method, path, query, headers, body) so tests can check what travelled where. Bodies
of Argo objects are checked against Argo's strict schema (`workflows.schema`) and the
problems kept in `stub.problems` (and answered with 400, as the server's validation does).

Workflows advance one DAG level per GET, so `--wait` sees Pending -> Running -> Succeeded;
`stub.fail_task = {"train": "OOMKilled (exit code 137)"}` makes new workflows fail there,
and a retry keeps the succeeded nodes and reruns from the failed one.
"""
from __future__ import annotations

import copy
import json
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workflows.schema import validate_manifest

KINDS = {"workflows": "Workflow", "workflow-templates": "WorkflowTemplate", "cron-workflows": "CronWorkflow"}
BODY_KEYS = {"workflows": "workflow", "workflow-templates": "template", "cron-workflows": "cronWorkflow"}
RESOURCES = {"workflows": "workflows", "workflow-templates": "workflowtemplates", "cron-workflows": "cronworkflows"}
CREATOR = "workflows.argoproj.io/creator"
BASE_TIME = datetime(2025, 1, 6, 3, 0, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=7, seconds=5)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _only(item: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for path in paths:
        source, target = item, kept
        for depth, key in enumerate(path):
            if not isinstance(source, dict) or key not in source:
                break
            if depth == len(path) - 1:
                target[key] = copy.deepcopy(source[key])
            else:
                source, target = source[key], target.setdefault(key, {})
    return kept


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Injected:
    status: int
    body: str
    method: str | None
    path_contains: str | None
    times: int


@dataclass
class Run:
    """A workflow's progress: the DAG level being run and which tasks fail."""

    level: int = -1
    fail: dict[str, str] = field(default_factory=dict)
    retries: int = 0


class ArgoStub:
    def __init__(self, token: str | None = "stub-token-Zq81", namespaces: tuple[str, ...] = ("argo",)):
        self.token = token
        self.namespaces = set(namespaces)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], Run] = {}
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self.fail_task: dict[str, str] = {}
        self.delay = 0.0  # seconds before answering, for client timeouts
        self._injected: list[Injected] = []
        self._sequence = 0
        self._version = 100
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ArgoStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                stub._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                stub._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                stub._handle(self, "PUT")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- test helpers ----------------------------------------------------------------------------

    def inject(self, status: int, message: str | None = None, *, method: str | None = None,
               path_contains: str | None = None, times: int = 1, raw: str | None = None) -> None:
        """Answer the next matching request(s) with `status` and {"code": ..., "message": message} (or `raw`)."""
        body = raw if raw is not None else json.dumps({"code": 2, "message": message or "injected"})
        self._injected.append(Injected(status, body, method, path_contains, times))

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    def stored(self, collection: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(collection, namespace, name)]

    # --- HTTP ------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8") if length else ""
        parts = urlsplit(handler.path)
        record = Recorded(method, parts.path, parts.query, dict(handler.headers.items()), body)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.requests.append(record)
            status, reply = self._answer(record)
        data = reply if isinstance(reply, str) else json.dumps(reply)
        payload = data.encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json" if data.startswith("{") else "text/html")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def _answer(self, request: Recorded) -> tuple[int, Any]:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"code": 16, "message": "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"}
        for injected in self._injected:
            if injected.times > 0 and (injected.method in (None, request.method)) and \
                    (injected.path_contains is None or injected.path_contains in request.path):
                injected.times -= 1
                return injected.status, injected.body
        segments = request.path.strip("/").split("/")
        if segments[:2] != ["api", "v1"] or len(segments) < 3:
            return 404, {"code": 5, "message": "Not Found"}
        route = segments[2:]
        if route == ["version"] and request.method == "GET":
            return 200, {"version": "v3.6.5"}
        collection = route[0]
        if collection not in KINDS or len(route) < 2:
            return 404, {"code": 5, "message": "Not Found"}
        namespace = route[1]
        rest = route[2:]
        try:
            payload = request.json
        except json.JSONDecodeError:
            return 400, {"code": 3, "message": "invalid JSON body"}
        if not rest and request.method == "GET":
            return self._list(collection, namespace, (parse_qs(request.query).get("fields") or [None])[0])
        if not rest and request.method == "POST":
            return self._create(collection, namespace, payload)
        if rest == ["lint"] and request.method == "POST":
            return self._lint(collection, namespace, payload)
        if collection == "workflows" and rest == ["submit"] and request.method == "POST":
            return self._submit(namespace, payload)
        if len(rest) == 1 and request.method == "GET":
            return self._get(collection, namespace, rest[0])
        if len(rest) == 1 and request.method == "PUT":
            return self._update(collection, namespace, rest[0], payload)
        if collection == "workflows" and len(rest) == 2 and rest[1] == "retry" and request.method == "PUT":
            return self._retry(namespace, rest[0], payload)
        return 404, {"code": 5, "message": "Not Found"}

    # --- validation ------------------------------------------------------------------------------

    def _check(self, collection: str, namespace: str, obj: Any) -> list[str]:
        kind = KINDS[collection]
        if not isinstance(obj, dict):
            return [f"request body has no {BODY_KEYS[collection]}"]
        problems = [p for p in validate_manifest({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, **obj})]
        if obj.get("kind") not in (None, kind):
            problems.append(f"kind {obj.get('kind')} sent to the {collection} endpoint")
        meta_ns = (obj.get("metadata") or {}).get("namespace")
        if meta_ns not in (None, namespace):
            problems.append(f"metadata.namespace {meta_ns} does not match the request's namespace {namespace}")
        spec = obj.get("spec") or {}
        workflow_spec = spec.get("workflowSpec", spec)
        names = {t.get("name") for t in workflow_spec.get("templates") or []}
        entry = workflow_spec.get("entrypoint")
        if names and entry not in names:
            problems.append(f"spec.entrypoint: template {entry} not found")
        ref = (workflow_spec.get("workflowTemplateRef") or {}).get("name")
        if ref and ("workflow-templates", namespace, ref) not in self.objects:
            problems.append(f'workflowtemplates.argoproj.io "{ref}" not found')
        self.problems += problems
        return problems

    # --- objects ---------------------------------------------------------------------------------

    def _list(self, collection: str, namespace: str, fields: str | None) -> tuple[int, Any]:
        items = [copy.deepcopy(self._view(c, n, name)) for (c, n, name) in sorted(self.objects)
                 if c == collection and n == namespace]
        if fields:  # Argo's `fields`: keep only the listed paths of each item
            paths = [f.split(".")[1:] for f in fields.split(",") if f.startswith("items.")]
            items = [_only(item, paths) for item in items]
        return 200, {"metadata": {"resourceVersion": str(self._version)}, "items": items or None}

    def _stamp(self, collection: str, namespace: str, obj: dict[str, Any], created: bool) -> dict[str, Any]:
        self._version += 1
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["resourceVersion"] = str(self._version)
        meta.setdefault("labels", {})[CREATOR] = "system-serviceaccount-argo-argo-server"
        if created:
            meta["uid"] = f"uid-{self._version}"
            meta["creationTimestamp"] = _ts(BASE_TIME + timedelta(seconds=self._version))
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = "argoproj.io/v1alpha1", KINDS[collection]
        return obj

    def _create(self, collection: str, namespace: str, payload: Any) -> tuple[int, Any]:
        obj = (payload or {}).get(BODY_KEYS[collection])
        if namespace not in self.namespaces:
            return 404, {"code": 5, "message": f'namespaces "{namespace}" not found'}
        problems = self._check(collection, namespace, obj)
        if problems:
            return 400, {"code": 3, "message": "; ".join(problems)}
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            self._sequence += 1
            meta["name"] = f"{meta.pop('generateName', 'wf-')}{self._sequence:05x}"
        key = (collection, namespace, meta["name"])
        if key in self.objects:
            return 409, {"code": 6, "message": f'{RESOURCES[collection]}.argoproj.io "{meta["name"]}" already exists'}
        self.objects[key] = self._stamp(collection, namespace, obj, created=True)
        if collection == "workflows":
            obj["status"] = {}
            self.runs[(namespace, meta["name"])] = Run(fail=dict(self.fail_task))
        return 200, copy.deepcopy(obj)

    def _lint(self, collection: str, namespace: str, payload: Any) -> tuple[int, Any]:
        obj = (payload or {}).get(BODY_KEYS[collection])
        problems = self._check(collection, namespace, obj)
        if problems:
            return 400, {"code": 3, "message": "; ".join(problems)}
        return 200, obj

    def _get(self, collection: str, namespace: str, name: str) -> tuple[int, Any]:
        if (collection, namespace, name) not in self.objects:
            return 404, {"code": 5, "message": f'{RESOURCES[collection]}.argoproj.io "{name}" not found'}
        if collection == "workflows":
            self._advance(namespace, name)
        return 200, copy.deepcopy(self._view(collection, namespace, name))

    def _view(self, collection: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(collection, namespace, name)]

    def _update(self, collection: str, namespace: str, name: str, payload: Any) -> tuple[int, Any]:
        key = (collection, namespace, name)
        if key not in self.objects:
            return 404, {"code": 5, "message": f'{RESOURCES[collection]}.argoproj.io "{name}" not found'}
        obj = (payload or {}).get(BODY_KEYS[collection])
        problems = self._check(collection, namespace, obj)
        if problems:
            return 400, {"code": 3, "message": "; ".join(problems)}
        if (obj.get("metadata") or {}).get("name") != name:
            return 400, {"code": 3, "message": "metadata.name does not match the URL"}
        current = self.objects[key]
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return 409, {"code": 10, "message": f'Operation cannot be fulfilled on {RESOURCES[collection]}.argoproj.io '
                                                f'"{name}": the object has been modified; please apply your changes '
                                                "to the latest version and try again"}
        updated = copy.deepcopy(obj)
        for keep in ("uid", "creationTimestamp"):
            updated["metadata"][keep] = current["metadata"][keep]
        updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        if "status" in current:
            updated["status"] = current["status"]
        self.objects[key] = self._stamp(collection, namespace, updated, created=False)
        return 200, copy.deepcopy(updated)

    def _submit(self, namespace: str, payload: Any) -> tuple[int, Any]:
        payload = payload or {}
        if namespace not in self.namespaces:
            return 404, {"code": 5, "message": f'namespaces "{namespace}" not found'}
        if payload.get("resourceKind") != "WorkflowTemplate":
            return 400, {"code": 3, "message": f"resourceKind {payload.get('resourceKind')} is not supported"}
        name = payload.get("resourceName")
        template = self.objects.get(("workflow-templates", namespace, name))
        if template is None:
            return 404, {"code": 5, "message": f'workflowtemplates.argoproj.io "{name}" not found'}
        options = payload.get("submitOptions") or {}
        labels = dict(item.split("=", 1) for item in (options.get("labels") or "").split(",") if "=" in item)
        labels["workflows.argoproj.io/workflow-template"] = name
        known = {p["name"] for p in (template["spec"].get("arguments") or {}).get("parameters") or []}
        parameters = []
        for item in options.get("parameters") or []:
            key, _, value = item.partition("=")
            if key not in known:
                return 400, {"code": 3, "message": f"parameter {key} is not declared in the template"}
            parameters.append({"name": key, "value": value})
        workflow = {
            "metadata": {"generateName": options.get("generateName") or f"{name}-", "labels": labels},
            "spec": {"workflowTemplateRef": {"name": name},
                     **({"arguments": {"parameters": parameters}} if parameters else {})},
        }
        return self._create("workflows", namespace, {"workflow": workflow})

    def _retry(self, namespace: str, name: str, payload: Any) -> tuple[int, Any]:
        key = ("workflows", namespace, name)
        if key not in self.objects:
            return 404, {"code": 5, "message": f'workflows.argoproj.io "{name}" not found'}
        workflow = self.objects[key]
        phase = (workflow.get("status") or {}).get("phase")
        if phase not in ("Failed", "Error"):
            return 400, {"code": 3, "message": "workflow must be Failed/Error to retry"}
        if (payload or {}).get("restartSuccessful"):
            return 400, {"code": 3, "message": "this stub only does Argo's default retry"}
        run = self.runs[(namespace, name)]
        failed_levels = [self._levels(workflow)[0][task] for task in run.fail]
        run.fail = {}
        run.retries += 1
        run.level = min(failed_levels) - 1 if failed_levels else run.level
        workflow["status"]["phase"] = "Running"
        workflow["status"].pop("finishedAt", None)
        workflow["status"].pop("message", None)
        return 200, copy.deepcopy(workflow)

    # --- workflow progress -------------------------------------------------------------------------

    def _spec_of(self, workflow: dict[str, Any]) -> dict[str, Any]:
        spec = workflow.get("spec") or {}
        ref = (spec.get("workflowTemplateRef") or {}).get("name")
        if ref:
            namespace = workflow["metadata"]["namespace"]
            return self.objects[("workflow-templates", namespace, ref)]["spec"]
        return spec

    def _levels(self, workflow: dict[str, Any]) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, Any]]:
        """Each task's DAG level (0 = no dependencies), the tasks, and the templates by name."""
        spec = self._spec_of(workflow)
        templates = {t["name"]: t for t in spec.get("templates") or []}
        dag = templates[spec["entrypoint"]].get("dag") or {"tasks": []}
        tasks = {task["name"]: task for task in dag["tasks"]}
        deps = {name: [word for word in _NAME.findall(task.get("depends") or "") if word in tasks]
                for name, task in tasks.items()}
        levels: dict[str, int] = {}
        for _ in range(len(tasks) + 1):
            for name in tasks:
                if all(dep in levels for dep in deps[name]):
                    levels[name] = 1 + max((levels[dep] for dep in deps[name]), default=-1)
        return levels, tasks, templates

    def _advance(self, namespace: str, name: str) -> None:
        """One DAG level further: lower levels finished, this level running, failures and their dependents."""
        workflow = self.objects[("workflows", namespace, name)]
        run = self.runs[(namespace, name)]
        if (workflow.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return
        levels, tasks, templates = self._levels(workflow)
        run.level += 1
        current = run.level
        nodes: dict[str, dict[str, Any]] = {}
        failed: list[str] = []  # failed tasks
        blocked: list[str] = []  # failed or omitted: their dependents are omitted
        pods = {"done": 0, "total": 0}

        def node_id(label: str) -> str:
            return f"{name}-{zlib.crc32(label.encode()):010d}"

        def times(level: int, phase: str) -> dict[str, str]:
            out = {"startedAt": _ts(BASE_TIME + STEP * level)}
            if phase != "Running":
                out["finishedAt"] = _ts(BASE_TIME + STEP * (level + 1))
            return out

        def leaf(label: str, template: str, phase: str, level: int, message: str | None,
                 boundary: str = name, path: str = name) -> list[dict[str, Any]]:
            """A pod, or a Retry node with its first attempt when the template retries."""
            retried = bool(templates[template].get("retryStrategy"))
            pod_label = f"{label}(0)" if retried else label
            extra = {"message": message} if message else {}
            pod = {"id": node_id(f"{path}.{pod_label}"), "name": f"{path}.{pod_label}", "displayName": pod_label,
                   "type": "Pod", "templateName": template, "phase": phase, "boundaryID": boundary,
                   **times(level, phase), **extra}
            pods["total"] += 1
            pods["done"] += phase == "Succeeded"
            if not retried:
                return [pod]
            retry = {"id": node_id(f"{path}.{label}"), "name": f"{path}.{label}", "displayName": label, "type": "Retry",
                     "templateName": template, "phase": phase, "boundaryID": boundary, "children": [pod["id"]],
                     **times(level, phase), **extra}
            return [retry, pod]

        def fan_out(task_name: str, task: dict[str, Any], phase: str, level: int, message: str | None,
                    boundary: str, path: str) -> list[dict[str, Any]]:
            """A TaskGroup with one item per subject, as Argo shows a `withParam` task."""
            group = {"id": node_id(f"{path}.{task_name}"), "name": f"{path}.{task_name}", "displayName": task_name,
                     "type": "TaskGroup", "phase": phase, "boundaryID": boundary, "templateName": task["template"],
                     "children": [], **times(level, phase)}
            out = [group]
            for index, subject in enumerate(("math", "physics")):
                item_nodes = leaf(f"{task_name}({index}:{subject})", task["template"], phase, level, message,
                                  boundary, path)
                group["children"].append(item_nodes[0]["id"])
                out += item_nodes
            return out

        for task_name, level in sorted(levels.items(), key=lambda item: (item[1], item[0])):
            if level > current:
                continue
            task = tasks[task_name]
            if any(dep in blocked for dep in self._deps(task, tasks)):
                nodes[node_id(f"{name}.{task_name}")] = {"id": node_id(f"{name}.{task_name}"), "name": f"{name}.{task_name}",
                                             "displayName": task_name, "type": "Skipped", "phase": "Omitted",
                                             "boundaryID": name, "message": "omitted: depends condition not met"}
                blocked.append(task_name)
                continue
            message = run.fail.get(task_name) if level < current else None
            phase = "Running" if level == current else ("Failed" if message else "Succeeded")
            if message:
                failed.append(task_name)
                blocked.append(task_name)
            inner = (templates[task["template"]].get("dag") or {}).get("tasks")
            if task.get("withParam") or task.get("withItems"):
                nodes.update({node["id"]: node for node in fan_out(task_name, task, phase, level, message, name, name)})
            elif inner:  # a DAG template: its own node, its tasks inside its boundary
                dag_node = {"id": node_id(f"{name}.{task_name}"), "name": f"{name}.{task_name}",
                            "displayName": task_name, "type": "DAG", "phase": phase, "boundaryID": name,
                            "templateName": task["template"], "children": [], **times(level, phase)}
                nodes[dag_node["id"]] = dag_node
                for inner_task in inner:
                    made = (fan_out(inner_task["name"], inner_task, phase, level, message, dag_node["id"],
                                    dag_node["name"]) if inner_task.get("withParam") else
                            leaf(inner_task["name"], inner_task["template"], phase, level, message, dag_node["id"],
                                 dag_node["name"]))
                    dag_node["children"].append(made[0]["id"])
                    nodes.update({node["id"]: node for node in made})
            else:
                nodes.update({node["id"]: node for node in leaf(task_name, task["template"], phase, level, message)})
        for node in nodes.values():  # Argo's DAG edges: a task node's children are its dependents
            if node.get("boundaryID") != name:
                continue  # edges of the pipeline DAG only
            dependents = [node_id(f"{name}.{t}") for t, task in tasks.items()
                          if node.get("displayName") in self._deps(task, tasks)]
            if dependents and node.get("type") in ("Pod", "Retry", "TaskGroup", "Skipped", "DAG"):
                node.setdefault("children", [])
                node["children"] += [d for d in dependents if d in nodes and d not in node["children"]]
        finished = current > max(levels.values(), default=-1)
        phase = ("Failed" if failed else "Succeeded") if finished else "Running"
        root = {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": phase,
                "templateName": self._spec_of(workflow)["entrypoint"], "startedAt": _ts(BASE_TIME),
                "children": [node_id(f"{name}.{t}") for t, lv in levels.items() if lv == 0]}
        status: dict[str, Any] = {"phase": phase, "startedAt": _ts(BASE_TIME),
                                  "progress": f"{pods['done']}/{max(pods['total'], 1)}", "nodes": {name: root, **nodes}}
        if finished:
            status["finishedAt"] = root["finishedAt"] = _ts(BASE_TIME + STEP * (current + 1))
            if failed:
                status["message"] = root["message"] = "child '" + node_id(f"{name}.{failed[0]}") + "' failed"
        workflow["status"] = status

    @staticmethod
    def _deps(task: dict[str, Any], tasks: dict[str, Any]) -> list[str]:
        return [word for word in _NAME.findall(task.get("depends") or "") if word in tasks]
