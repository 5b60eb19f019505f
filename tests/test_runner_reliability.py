"""Issue 11's runner items: resume checks files, one run per workdir, no orphaned steps, no writes
through symlinks, a damaged state.json is one line; and each step's threads capped from its CPU."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_runner_support import APPEND, OK, pods, py, run, task, workflow, workspace
from typer.testing import CliRunner

from workflows.cli import app
from workflows.runner import RunnerError
from workflows.runner.survivors import identify
from workflows.runner.threads import thread_count, thread_env
from workflows.runner.workdir import WorkdirBusy

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]
WRITE = "import sys, os; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); open(sys.argv[1], 'w').write('x')"
READ = "import sys; open(sys.argv[1]).read()"


def _write_manifest(path: Path, manifest: dict) -> Path:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 60) -> str:
    deadline = time.time() + seconds
    while not path.exists() or not path.read_text():
        assert time.time() < deadline and process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    return path.read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _start_runner(manifest: Path, workdir: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "workflows.cli", "run", str(manifest), "--workdir", str(workdir)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


# --- item 3: resume trusts files, not only fingerprints --------------------------------------------------

def test_issue11_item3_a_reused_task_reruns_when_a_file_it_wrote_is_gone(tmp_path: Path) -> None:
    manifest = workflow(
        [py("write", WRITE, ("path",)), py("read", READ, ("path",))],
        [task("make", "write", args={"path": "/workspace/run/data/train.parquet"}),
         task("use", "read", "make", args={"path": "/workspace/run/data/train.parquet"}),
         task("other", "write", args={"path": "/workspace/run/other/x"})])
    first = run(manifest, tmp_path)
    assert first.succeeded
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["nodes"]["make"]["written"] == ["volumes/workspace/run/data/train.parquet"]

    assert {name for name, pod in pods(run(manifest, tmp_path)).items() if pod["reused"]} == {"make", "use", "other"}

    (workspace(first) / "run/data/train.parquet").unlink()
    third = run(manifest, tmp_path)
    assert third.succeeded
    assert (workspace(third) / "run/data/train.parquet").exists()
    # the writer and what depends on it ran again; the unrelated task was reused
    assert {name for name, pod in pods(third).items() if pod["reused"]} == {"other"}


# --- item 4: one run per workdir ----------------------------------------------------------------------------

def test_issue11_item4_a_second_run_on_a_busy_workdir_says_who_holds_it(tmp_path: Path) -> None:
    slow = ("import os, time, pathlib; pathlib.Path('/workspace/pid').write_text(str(os.getpid())); "
            "time.sleep(60)")
    manifest = _write_manifest(tmp_path / "wf.yaml", workflow([py("slow", slow)], [task("slow", "slow")]))
    workdir = tmp_path / "w"
    holder = _start_runner(manifest, workdir)
    try:
        _wait_for(workdir / "volumes" / "workspace" / "pid", holder)
        with pytest.raises(WorkdirBusy, match=rf"in use by another tunebench run \(pid {holder.pid} on host .+, "
                                              r"started \d{4}-\d\d-\d\dT"):
            run(workflow([py("ok", OK)], [task("a", "ok")]), workdir)
        result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir)])
        assert result.exit_code == 2 and f"pid {holder.pid}" in result.output
        assert "Traceback" not in result.output
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=60)
    run(workflow([py("ok", OK)], [task("a", "ok")]), tmp_path / "free")  # the lock goes with its holder


# --- item 5: the runner's death ends its steps; a resume first stops leftovers -----------------------------

def test_issue11_item5_killing_the_runner_ends_its_steps_and_their_children(tmp_path: Path) -> None:
    step = ("import os, subprocess, sys, time, pathlib; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "pathlib.Path('/workspace/pids').write_text(f'{os.getpid()} {child.pid}'); time.sleep(60)")
    manifest = _write_manifest(tmp_path / "wf.yaml", workflow([py("train", step)], [task("train", "train")]))
    runner = _start_runner(manifest, tmp_path / "w")
    pids = [int(pid) for pid in _wait_for(tmp_path / "w" / "volumes" / "workspace" / "pids", runner).split()]
    runner.kill()  # SIGKILL: no handler of the runner's runs
    runner.communicate(timeout=30)
    deadline = time.time() + 30
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def test_issue11_item5_a_resume_first_stops_steps_an_earlier_run_left_running(tmp_path: Path) -> None:
    manifest = workflow([py("ok", OK)], [task("a", "ok")])
    first = run(manifest, tmp_path)
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        state = json.loads((tmp_path / "state.json").read_text())
        state["processes"] = {"a": identify(leftover.pid).as_dict()}
        (tmp_path / "state.json").write_text(json.dumps(state))
        from workflows.runner.engine import Engine, RunOptions
        engine = Engine(manifest, RunOptions(workdir=tmp_path, cwd=tmp_path, kill_grace_s=1.0))
        assert engine.stopped_leftovers == [f"pod 'a' of an earlier run was still running (pids {leftover.pid}); "
                                            "stopped it"]
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert engine.run().workflow_name == first.workflow_name
        assert json.loads((tmp_path / "state.json").read_text())["processes"] == {}
    finally:
        leftover.kill()
        leftover.wait()


def test_issue11_item5_a_recycled_pid_is_not_a_leftover(tmp_path: Path) -> None:
    manifest = workflow([py("ok", OK)], [task("a", "ok")])
    run(manifest, tmp_path)
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        state = json.loads((tmp_path / "state.json").read_text())
        record = identify(unrelated.pid).as_dict()
        record["start_ticks"] += 10_000  # the recorded leader started after this process: another process
        state["processes"] = {"a": record}
        (tmp_path / "state.json").write_text(json.dumps(state))
        assert run(manifest, tmp_path).succeeded
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


# --- item 6: names from state.json, symlinks in the workdir ------------------------------------------------------

def test_issue11_item6_a_run_name_from_state_json_cannot_escape_the_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "a" / "b" / "w"
    run(workflow([py("ok", OK)], [task("a", "ok")]), workdir)
    state = json.loads((workdir / "state.json").read_text())
    state["workflow"]["name"] = "../../.."
    (workdir / "state.json").write_text(json.dumps(state))
    manifest = workflow([py("w", WRITE, ("path",))],
                        [task("a", "w", args={"path": "/workspace/runs/{{workflow.name}}/data/x"})])
    with pytest.raises(RunnerError, match=r"the run name '\.\./\.\./\.\.' is not a valid workflow name"):
        run(manifest, workdir)
    assert not (tmp_path / "a" / "b" / "w" / "volumes" / "workspace" / "data").exists()
    assert not list(tmp_path.rglob("data"))


def test_issue11_item6_the_runner_never_writes_through_a_symlink_it_did_not_create(tmp_path: Path) -> None:
    manifest = workflow([py("ok", OK)], [task("a", "ok")])
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")

    workdir = tmp_path / "log-link"
    (workdir / "logs").mkdir(parents=True)
    (workdir / "logs" / "a.log").symlink_to(outside)
    result = run(manifest, workdir)
    assert result.phase == "Error"
    assert "a.log is a symlink" in pods(result)["a"]["message"]
    assert outside.read_text() == "keep me"

    workdir = tmp_path / "volume-link"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (workdir / "volumes").mkdir(parents=True)
    (workdir / "volumes" / "workspace").symlink_to(elsewhere)
    result = run(workflow([py("log", APPEND, ("file", "text"))], [task("a", "log", args={"file": "f", "text": "x"})]),
                 workdir)
    assert result.phase == "Error"
    assert "workspace is a symlink" in pods(result)["a"]["message"]
    assert list(elsewhere.iterdir()) == []

    workdir = tmp_path / "logs-link"
    workdir.mkdir()
    (workdir / "logs").symlink_to(elsewhere)
    with pytest.raises(RunnerError, match="logs is a symlink"):
        run(manifest, workdir)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("make", ["symlink", "directory", "fifo"])
def test_issue11_item6_a_lock_file_that_is_not_a_plain_file_is_refused(tmp_path: Path, make: str) -> None:
    workdir, target = tmp_path / "w", tmp_path / "elsewhere"
    workdir.mkdir()
    target.write_text("keep me")
    {"symlink": lambda: (workdir / ".lock").symlink_to(target), "directory": lambda: (workdir / ".lock").mkdir(),
     "fifo": lambda: os.mkfifo(workdir / ".lock")}[make]()
    with pytest.raises(RunnerError, match=r"\.lock (cannot be the workdir's lock file|is not a regular file)"):
        run(workflow([py("ok", OK)], [task("a", "ok")]), workdir)
    assert target.read_text() == "keep me"


# --- item 10: a damaged state.json is one line ---------------------------------------------------------------

@pytest.mark.parametrize("content", ["[]", '{"version":1}', '{"version":1,"workflow":{},"nodes":{"a":3}}',
                                     b"\xff\xfe".decode("latin-1")])
def test_issue11_item10_a_damaged_state_json_is_one_line(tmp_path: Path, content: str) -> None:
    manifest = _write_manifest(tmp_path / "wf.yaml", workflow([py("ok", OK)], [task("a", "ok")]))
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "state.json").write_text(content, encoding="latin-1")
    result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {workdir / 'state.json'}"), result.output
    assert "delete it" in lines[0] or "another --workdir" in lines[0]


# --- issue 13: threads capped from the container's CPU --------------------------------------------------------

def test_issue13_threads_follow_the_containers_cpu_limit_else_request() -> None:
    assert thread_count({"limits": {"cpu": "1500m"}, "requests": {"cpu": 8}}, "t", cores=16) == 2
    assert thread_count({"requests": {"cpu": "3"}}, "t", cores=16) == 3
    assert thread_count({"requests": {"cpu": "100m"}}, "t", cores=16) == 1  # at least one
    assert thread_count({"limits": {"cpu": 64}}, "t", cores=16) == 16  # at most this machine's cores
    assert thread_count({"limits": {"nvidia.com/gpu": 1}}, "t", cores=16) is None
    assert thread_env({"limits": {"cpu": 2}}, "t", cores=16)["OMP_NUM_THREADS"] == "2"
    with pytest.raises(ValueError, match=r"template 'x' resources.limits.cpu: 'two' is not a CPU quantity"):
        thread_count({"limits": {"cpu": "two"}}, "template 'x'")


def test_issue13_a_step_sees_its_thread_caps_and_the_templates_env_wins(tmp_path: Path) -> None:
    dump = ("import os, json; json.dump({k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', "
            "'OPENBLAS_NUM_THREADS')}, open('/workspace/' + os.environ['NAME'], 'w'))")
    capped = py("capped", dump, container={"resources": {"requests": {"cpu": "1"}},
                                           "env": [{"name": "NAME", "value": "capped"}]})
    chosen = py("chosen", dump, container={"resources": {"limits": {"cpu": "1"}},
                                           "env": [{"name": "NAME", "value": "chosen"},
                                                   {"name": "MKL_NUM_THREADS", "value": "7"}]})
    result = run(workflow([capped, chosen], [task("a", "capped"), task("b", "chosen")]), tmp_path,
                 env={**os.environ, "OMP_NUM_THREADS": "99"})
    assert result.succeeded
    assert json.loads((workspace(result) / "capped").read_text()) == {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert json.loads((workspace(result) / "chosen").read_text())["MKL_NUM_THREADS"] == "7"
