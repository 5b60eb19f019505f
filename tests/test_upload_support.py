"""Helpers of the upload tests: a small but well-formed model folder, an MMLU-Pro summary.json written
by steps.aggregate itself, and a stand-in for the hub's HTTP API.

The stand-in speaks the endpoints a commit of small files uses (create repo, validate the
card's YAML, preupload, commit); it answers "regular" upload mode, so file contents arrive
inline in the commit and can be checked byte for byte. Any other model repo is missing, as
the hub says it (404 with X-Error-Code RepoNotFound).
"""
from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from steps.aggregate import aggregate
from steps.common import write_json_atomic
from steps.mmlu_pro.results import settings_hash, subject_summary
from steps.plan_eval import plan, write_plan

REPO = "acme/tiny-finetune"
MERGED = "/workspace/runs/r1/train/output/merged"
# (correct, answered, questions) per model and subject: the reference run's math scores (0.107 and
# 0.238 of 1,351), a partial result (50 of 100 law questions answered) and a missing one.
REFERENCE_RESULTS = {
    "google/gemma-2-2b": {"math": (145, 1351, 1351), "law": (30, 100, 100)},
    "google/gemma-3-12b-it": {"math": (500, 1351, 1351)},
    MERGED: {"math": (321, 1351, 1351), "law": (20, 50, 100)},
}


def make_model_folder(folder: Path) -> Path:
    """Config, tokenizer files and one safetensors shard: what a complete model folder holds."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "WordLevel"}}))
    save_file({"embed.weight": np.arange(32, dtype=np.float32).reshape(4, 8)}, str(folder / "model.safetensors"))
    return folder


def write_reference_summary(run: Path, results: dict | None = None) -> Path:
    """RUN/summary/summary.json as the pipeline writes it: plan_eval's models.json, eval_mmlu_pro's
    per-subject summaries (steps.mmlu_pro.results.subject_summary), then steps.aggregate.aggregate."""
    results = REFERENCE_RESULTS if results is None else results
    baselines = [model for model in results if model != MERGED]
    subjects = list(dict.fromkeys(s for scores in results.values() for s in scores))
    planned = plan(baselines, subjects, finetuned_model=MERGED if MERGED in results else None, finetuned_label=REPO)
    write_plan(run / "eval" / "plan", planned)
    settings = {"engine": "hf", "extract": "tiger", "max_new_tokens": 2048}
    for model in planned["models"]:
        for subject, (correct, answered, questions) in results[model["model"]].items():
            records = [{"correct": i < correct, "method": "l1", "k": 5, "hit_token_limit": False}
                       for i in range(answered)]
            summary = subject_summary(records, n_questions=questions, subject=subject, model=model["model"],
                                      label=model["label"], role=model["role"], engine="hf", model_revision="rev-1",
                                      dataset="TIGER-Lab/MMLU-Pro", dataset_revision="rev-data", extract="tiger",
                                      limit=None, settings=settings, settings_hash=settings_hash(settings))
            write_json_atomic(run / "eval" / model["slug"] / f"{subject}.summary.json", summary)
    aggregate(run / "eval", run / "eval" / "plan" / "models.json", subjects, run / "summary", "r1")
    return run / "summary" / "summary.json"


class HubStandIn(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.created: list[dict] = []
        self.commits: list[dict[str, bytes]] = []
        self.auth_headers: set[str] = set()
        self.fail_commits_with: list[int] = []  # statuses returned by the next commit calls, in order
        self.reject_token = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    server: HubStandIn

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.auth_headers.add(self.headers.get("Authorization", ""))
        if self.server.reject_token:
            return self._reply(401, {"error": "Invalid credentials in Authorization header"})
        if self.path == "/api/repos/create":
            self.server.created.append(json.loads(body))
            return self._reply(200, {"url": f"{self.server.endpoint}/{REPO}"})
        if self.path == "/api/validate-yaml":
            return self._reply(200, {})
        if self.path.startswith(f"/api/models/{REPO}/preupload/"):
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if self.path.startswith(f"/api/models/{REPO}/commit/"):
            if self.server.fail_commits_with:
                return self._reply(self.server.fail_commits_with.pop(0), {"error": "upstream unavailable"})
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            files = {item["value"]["path"]: base64.b64decode(item["value"]["content"])
                     for item in lines if item["key"] == "file"}
            self.server.commits.append(files)
            return self._reply(200, {"commitUrl": f"{self.server.endpoint}/{REPO}/commit/{'a' * 40}",
                                     "commitOid": "a" * 40, "pullRequestUrl": None})
        if self.path.startswith("/api/models/"):
            return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return self._reply(404, {"error": f"no route {self.path}"})
