"""Benchmark the local runner against the same commands run one after another in a shell loop.

    python benchmarks/runner.py [--tasks 20] [--fanout 50] [--sleep 0.2] [--parallelism 8] [--workdir DIR]

1. A chain of N trivial tasks (`python -c pass`, each depending on the previous one) through
   the runner, against a bash loop running the same N commands: the difference divided by N is
   the runner's overhead per task (scheduling, substitution, state and log files, the thread
   that waits for the process). Aim: under 0.5 s.
2. A fan-out of M tasks (`withItems`, each sleeping S seconds) through the runner with
   --parallelism P, against the bash loop running the M commands one after another: the
   speedup the fan-out gives.

The runner runs in this process (its import and the CLI's startup are not counted; the
Python start of every task is, on both sides). One run of each (the shell loop of the chain
twice, the faster counting); the numbers are printed.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from workflows.runner import RunOptions, run_workflow  # noqa: E402

TRIVIAL = "pass"


def _template(name: str, code: str, inputs: tuple[str, ...] = ()) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name,
        "container": {"image": "python:3.11", "command": ["python", "-c"],
                      "args": [code] + ["{{inputs.parameters." + i + "}}" for i in inputs],
                      "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]},
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": i} for i in inputs]}
    return template


def _workflow(templates: list[dict[str, Any]], tasks: list[dict[str, Any]], parallelism: int | None = None) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "bench-"},
        "spec": {"entrypoint": "main", "parallelism": parallelism,
                 "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "ws"}}],
                 "templates": templates + [{"name": "main", "dag": {"tasks": tasks}}]},
    }


def chain(n: int) -> dict:
    tasks = [{"name": f"t{i:03d}", "template": "trivial", **({"depends": f"t{i - 1:03d}"} if i else {})}
             for i in range(n)]
    return _workflow([_template("trivial", TRIVIAL)], tasks)


def fanout(m: int, sleep: float) -> dict:
    code = f"import sys, time; time.sleep({sleep})"
    tasks = [{"name": "fan", "template": "sleep", "withItems": list(range(m)),
              "arguments": {"parameters": [{"name": "i", "value": "{{item}}"}]}}]
    return _workflow([_template("sleep", code, ("i",))], tasks)


def shell_loop(commands: list[list[str]], workdir: Path) -> float:
    script = workdir / "loop.sh"
    script.write_text("set -e\n" + "".join(shlex.join(cmd) + " >/dev/null\n" for cmd in commands))
    started = time.perf_counter()
    subprocess.run(["bash", str(script)], check=True, cwd=workdir)
    return time.perf_counter() - started


def run_runner(manifest: dict, workdir: Path, parallelism: int) -> float:
    started = time.perf_counter()
    result = run_workflow(manifest, RunOptions(workdir=workdir, cwd=workdir, parallelism=parallelism))
    elapsed = time.perf_counter() - started
    if not result.succeeded:
        raise SystemExit(f"benchmark workflow failed: {result.message}")
    return elapsed


def main(
    tasks: Annotated[int, typer.Option(min=1, help="trivial tasks in the chain")] = 20,
    fanout_size: Annotated[int, typer.Option("--fanout", min=1, help="tasks in the fan-out")] = 50,
    sleep: Annotated[float, typer.Option(min=0.0, help="seconds each fan-out task sleeps")] = 0.2,
    parallelism: Annotated[int, typer.Option(min=1, help="runner parallelism for the fan-out")] = 8,
    workdir: Annotated[Path | None, typer.Option(help="where to put the runs (default: a temp dir)")] = None,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="tunebench-bench-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    python = sys.executable

    # The loop runs before and after the runner and the faster time counts: on shared cores a
    # single timing is noisy, and the faster loop gives the runner's overhead the benefit of no doubt.
    loop_commands = [[python, "-c", TRIVIAL]] * tasks
    loop_before = shell_loop(loop_commands, root)
    runner_chain = run_runner(chain(tasks), root / "chain", parallelism=1)
    loop_chain = min(loop_before, shell_loop(loop_commands, root))
    overhead = (runner_chain - loop_chain) / tasks

    sleep_code = f"import sys, time; time.sleep({sleep})"
    loop_fan = shell_loop([[python, "-c", sleep_code, str(i)] for i in range(fanout_size)], root)
    runner_fan = run_runner(fanout(fanout_size, sleep), root / "fanout", parallelism=parallelism)

    print(f"chain of {tasks} trivial tasks (python -c pass), one after another")
    print(f"  shell loop      {loop_chain:7.2f} s   ({loop_chain / tasks * 1000:6.1f} ms per task)")
    print(f"  tunebench run   {runner_chain:7.2f} s   ({runner_chain / tasks * 1000:6.1f} ms per task)")
    print(f"  overhead        {overhead * 1000:7.1f} ms per task   (aim: < 500 ms)")
    print(f"fan-out of {fanout_size} tasks sleeping {sleep:g} s, runner parallelism {parallelism}")
    print(f"  shell loop      {loop_fan:7.2f} s")
    print(f"  tunebench run   {runner_fan:7.2f} s")
    print(f"  speedup         {loop_fan / runner_fan:7.1f}x   (ideal: {min(parallelism, fanout_size)}x)")
    print(f"runs under {root}")


if __name__ == "__main__":
    typer.run(main)
