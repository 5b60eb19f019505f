"""One container of the manifest as a local process: the pod the local runner starts.

- `python`, `python3`, `python3.11` become the project's interpreter (sys.executable); any
  other command runs as it is from PATH, with the interpreter's bin directory first on it.
- Every volume mount's mountPath maps to `<workdir>/volumes/<volume>[/<subPath>]`: the runner
  rewrites that path prefix wherever it appears in args, env values, workingDir and output
  paths. An emptyDir is a fresh folder per attempt, removed after it (as a pod's is).
- Env: the user's environment, minus the variables other templates take from Secrets, plus the
  template's env. A secretKeyRef takes the variable of the same name from the local environment.
- The process gets its own session (process group), so a deadline or Ctrl-C ends its children too;
  it is started under `supervisor.py`, so it also ends when the runner dies.
- OMP_NUM_THREADS and friends come from the container's CPU limit (see threads.py).
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from steps.contract import LOCAL_VOLUMES_FOLDER
from workflows.argo.phase import Phase
from workflows.argo.validate import Template, uses_python
from workflows.runner.supervisor import CANNOT_START_EXIT_CODE
from workflows.runner.survivors import ProcessIdentity, identify
from workflows.runner.threads import thread_count, thread_env
from workflows.runner.workdir import open_log, real_dir
from workflows.runner.written import changed_files, named_folders

SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))

SUCCEEDED, FAILED, ERROR = Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR


class PrepareError(Exception):
    """The pod cannot be started as configured (e.g. a required secret is missing); not worth retrying."""


@dataclass
class PodSpec:
    """What to run for one attempt, with every path already local."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    deadline_s: float | None
    outputs: list[tuple[str, Path, str | None]]  # name, local path, default
    workdir: Path = Path()
    volume_roots: list[Path] = field(default_factory=list)
    scratch_dirs: list[Path] = field(default_factory=list)  # emptyDir folders to remove afterwards
    unmap: PathMapper | None = None  # local folders -> mount paths, for output parameter values
    deadline_reason: str = ""


@dataclass
class AttemptResult:
    status: Phase  # Succeeded | Failed | Error
    exit_code: int | None
    message: str
    started: float
    finished: float
    outputs: dict[str, str] = field(default_factory=dict)
    signaled: bool = False  # killed by a signal the runner did not send
    written: list[str] = field(default_factory=list)  # see written.py; relative to the workdir


class AttemptRunner(Protocol):
    """One attempt of a pod, run in a worker thread: a local process, or a group of them (a JobSet)."""

    def run(self) -> AttemptResult: ...

    def kill(self, reason: str) -> None:
        """Stop the attempt; called from another thread."""


class PathMapper:
    """Rewrites container paths (mountPaths) to local folders inside strings."""

    def __init__(self, mapping: dict[str, Path]) -> None:
        self.mapping = {mount.rstrip("/") or "/": local for mount, local in mapping.items()}
        ordered = sorted(self.mapping, key=len, reverse=True)
        if ordered:
            alternatives = "|".join(re.escape(path) for path in ordered)
            self._pattern: re.Pattern[str] | None = re.compile(rf"(?<![\w.~/-])({alternatives})(?![\w.-])")
        else:
            self._pattern = None

    def __call__(self, text: str) -> str:
        if self._pattern is None or "/" not in text:
            return text
        return self._pattern.sub(lambda match: str(self.mapping[match.group(1)]), text)

    def reverse(self) -> PathMapper:
        """Local folders back to mount paths: output parameters carry the paths Argo would pass."""
        return PathMapper({str(local): Path(mount) for mount, local in self.mapping.items()})


def volume_dir(workdir: Path, volume: str) -> Path:
    return workdir / LOCAL_VOLUMES_FOLDER / volume


def prepare(template: Template, resolved: dict[str, Any], *, workdir: Path, cwd: Path, base_env: dict[str, str],
            secret_env_names: set[str], volume_kinds: dict[str, str], pod_key: str, python: str) -> PodSpec:
    """The local command of a resolved (substituted) container template."""
    container = resolved["container"]
    mapping: dict[str, Path] = {}
    scratch: list[Path] = []
    for mount in resolved["container"].get("volumeMounts") or []:
        volume = mount["name"]
        root = real_dir(volume_dir(workdir, volume), workdir)
        if volume_kinds.get(volume) == "emptyDir":
            root = root / pod_key
            if root.exists():
                shutil.rmtree(root, ignore_errors=True)
            scratch.append(root)
        local = root / mount["subPath"] if mount.get("subPath") else root
        mapping[mount["mountPath"]] = real_dir(local, workdir)
    mapper = PathMapper(mapping)

    command = [str(part) for part in container.get("command") or []]
    args = [str(part) for part in container.get("args") or []]
    if uses_python(command):
        command[0] = python
    argv = [command[0]] + [mapper(part) for part in command[1:] + args]

    env = {key: value for key, value in base_env.items() if key not in secret_env_names}
    env.update(thread_env(container.get("resources"), f"template '{template.name}'"))
    bin_dir = str(Path(python).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "") if env.get("PATH") else bin_dir
    for item in container.get("env") or []:
        name = item["name"]
        if "resourceFieldRef" in item.get("valueFrom", {}):
            env[name] = resource_field_value(container, item["valueFrom"]["resourceFieldRef"])
        elif "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            value = base_env.get(name)
            if value is None:
                if ref.get("optional"):
                    continue
                raise PrepareError(
                    f"env {name} comes from Secret '{ref.get('name')}' (key '{ref.get('key')}'), which is required; "
                    f"locally it is read from the environment variable {name}: set it, or make the secret optional")
            env[name] = value
        else:
            env[name] = mapper(str(item.get("value", "")))

    working_dir = container.get("workingDir")
    run_cwd = Path(mapper(str(working_dir))) if working_dir else cwd
    if working_dir and not run_cwd.is_absolute():
        run_cwd = cwd / run_cwd

    deadline = resolved.get("activeDeadlineSeconds")
    outputs = []
    for param in (resolved.get("outputs") or {}).get("parameters") or []:
        value_from = param["valueFrom"]
        outputs.append((param["name"], Path(mapper(str(value_from["path"]))), _default(value_from)))
    return PodSpec(argv=argv, env=env, cwd=run_cwd, deadline_s=float(deadline) if deadline is not None else None,
                   outputs=outputs, workdir=workdir, scratch_dirs=scratch,
                   volume_roots=[local for local in mapping.values() if not any(local.is_relative_to(s) for s in scratch)],
                   unmap=mapper.reverse())


def resource_field_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """The downward API's `limits.cpu` / `requests.cpu` of this container as a thread count, sized as
    threads.py sizes OMP_NUM_THREADS; without a CPU stated, this machine's cores (a pod gets its node's)."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if name != "cpu" or kind not in ("limits", "requests"):
        raise PrepareError(f"env from resourceFieldRef '{resource}': the local runner knows limits.cpu and requests.cpu")
    resources = container.get("resources") or {}
    try:
        count = thread_count({kind: resources.get(kind)}, f"container {container.get('name', '')}".strip())
    except ValueError as error:
        raise PrepareError(str(error)) from None
    return str(count or os.cpu_count() or 1)


def _default(value_from: dict[str, Any]) -> str | None:
    default = value_from.get("default")
    return None if default is None else str(default)


def unstartable(argv0: str, env: dict[str, str], cwd: Path) -> str | None:
    """Why `argv0` cannot be executed (as execvp would find it), or None."""
    if os.sep in argv0:
        path = Path(argv0) if Path(argv0).is_absolute() else cwd / argv0
        if not path.exists():
            return "No such file or directory"
        return None if path.is_file() and os.access(path, os.X_OK) else "Permission denied"
    return None if shutil.which(argv0, path=env.get("PATH", os.defpath)) else "No such file or directory"


class LocalProcess:
    """Runs one attempt under the supervisor; `kill()` may be called from another thread.
    `on_start` receives the identity of the attempt's session leader as soon as it exists."""

    def __init__(self, spec: PodSpec, log_path: Path, header: str, kill_grace_s: float,
                 on_start: Callable[[ProcessIdentity], None] | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self.header = header
        self.kill_grace_s = kill_grace_s
        self.on_start = on_start
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_reason: str | None = None

    def run(self) -> AttemptResult:
        started = time.time()
        started_ns = time.time_ns()
        with open_log(self.log_path, self.spec.workdir) as log:
            log.write(self.header.encode())
            log.write(("$ " + shlex.join(self.spec.argv) + "\n").encode())
            reason = unstartable(self.spec.argv[0], self.spec.env, self.spec.cwd)
            if reason is not None:  # a container whose command cannot start fails (it is not an Error)
                message = f"could not start {self.spec.argv[0]!r}: {reason}"
                log.write(f"tunebench run: {message}\n".encode())
                return AttemptResult(FAILED, CANNOT_START_EXIT_CODE, message, started, time.time())
            supervised = [sys.executable, "-I", "-S", SUPERVISOR, "--grace", str(self.kill_grace_s),
                          "--parent", str(os.getpid()), "--", *self.spec.argv]
            try:
                self.process = subprocess.Popen(
                    supervised, cwd=self.spec.cwd, env=self.spec.env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as error:
                message = f"could not start {self.spec.argv[0]!r}: {error.strerror or error}"
                log.write(f"tunebench run: {message}\n".encode())
                return AttemptResult(FAILED, CANNOT_START_EXIT_CODE, message, started, time.time())
            if self.on_start is not None:
                self.on_start(identify(self.process.pid))
            if self.killed_reason is not None:  # killed while starting
                self._signal_group(signal.SIGTERM)
            try:
                returncode = self.process.wait(timeout=self.spec.deadline_s)
            except subprocess.TimeoutExpired:
                self.killed_reason = self.spec.deadline_reason or f"deadline ({self.spec.deadline_s:g} s) exceeded"
                returncode = self._terminate()
            finished = time.time()
            result = self._result(returncode, started, finished)
            if result.status == SUCCEEDED:
                texts = self.spec.argv[1:] + [str(path) for _, path, _ in self.spec.outputs]
                folders = named_folders(texts, self.spec.volume_roots)
                result.written = changed_files(folders, started_ns, self.spec.workdir)
            if result.status != SUCCEEDED:
                log.write(f"tunebench run: {result.message}\n".encode())
        self._cleanup()
        return result

    def _result(self, returncode: int, started: float, finished: float) -> AttemptResult:
        if self.killed_reason is not None:
            code = 128 - returncode if returncode < 0 else returncode
            return AttemptResult(FAILED, code, self.killed_reason, started, finished)
        if returncode < 0:  # a container killed by a signal exits 128+n and is Failed, as any non-zero exit
            signum = -returncode
            name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
            return AttemptResult(FAILED, 128 + signum, f"killed by signal {name} (exit code {128 + signum})",
                                 started, finished, signaled=True)
        if returncode != 0:
            return AttemptResult(FAILED, returncode, f"exit code {returncode}", started, finished)
        outputs: dict[str, str] = {}
        for name, path, default in self.spec.outputs:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                if default is None:
                    return AttemptResult(ERROR, 0, f"output parameter '{name}': {path} was not written (no default)",
                                         started, finished)
                text = default
            text = text[:-1] if text.endswith("\n") else text
            outputs[name] = self.spec.unmap(text) if self.spec.unmap is not None else text
        return AttemptResult(SUCCEEDED, 0, "", started, finished, outputs)

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def _terminate(self) -> int:
        assert self.process is not None
        self._signal_group(signal.SIGTERM)
        try:
            return self.process.wait(timeout=self.kill_grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            return self.process.wait()

    def kill(self, reason: str) -> None:
        """Stop the attempt (SIGTERM to its process group, SIGKILL after the grace period)."""
        if self.killed_reason is None:
            self.killed_reason = reason
        if self.process is not None and self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            deadline = time.time() + self.kill_grace_s
            while self.process.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            if self.process.poll() is None:
                self._signal_group(signal.SIGKILL)

    def _cleanup(self) -> None:
        for folder in self.spec.scratch_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def default_python() -> str:
    return sys.executable
