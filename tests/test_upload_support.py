"""Helpers of the upload tests: a small but well-formed model folder, and a stand-in for the hub's HTTP API.

The stand-in speaks the endpoints a commit of small files uses (create repo, validate the
card's YAML, preupload, commit); it answers "regular" upload mode, so file contents arrive
inline in the commit and can be checked byte for byte.
"""
from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

REPO = "acme/tiny-finetune"


def make_model_folder(folder: Path) -> Path:
    """Config, tokenizer files and one safetensors shard: what a complete model folder holds."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "WordLevel"}}))
    save_file({"embed.weight": np.arange(32, dtype=np.float32).reshape(4, 8)}, str(folder / "model.safetensors"))
    return folder


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

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
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
        return self._reply(404, {"error": f"no route {self.path}"})
