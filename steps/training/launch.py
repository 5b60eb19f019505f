"""Which launcher, and for accelerate and torchrun the `axolotl` CLI as a child process: its command line,
its environment and the pitfalls of GPU pods (the python launcher runs in the step's process: in_process.py)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

from steps.common import StepInputError
from steps.training.distributed import Rendezvous

LauncherChoice = Literal["auto", "python", "accelerate", "torchrun"]
Launcher = Literal["python", "accelerate", "torchrun"]
# NCCL moves tensors between local ranks through /dev/shm; a container's default 64 MiB
# makes multi-GPU training die with bus errors mid-run.
MIN_SHM_BYTES = 1 << 30
SHM_PATH = Path("/dev/shm")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def require_axolotl() -> None:
    if importlib.util.find_spec("axolotl") is None:
        raise StepInputError(
            "axolotl is not installed in this Python environment; use the train image or "
            "`pip install 'tunebench[train]'`")


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_launcher(requested: LauncherChoice, gpus: int, cuda_devices: int, nodes: int = 1) -> Launcher:
    """`auto`: torchrun across nodes; on one node accelerate with one process per GPU where CUDA is
    visible, the python launcher on a CPU."""
    if nodes > 1:
        if requested not in ("auto", "torchrun"):
            raise StepInputError(f"--launcher {requested} runs on one node; --nodes {nodes} needs torchrun "
                                 f"(or auto)")
    elif requested == "torchrun":
        raise StepInputError("--launcher torchrun is for --nodes 2 or more; one node uses auto, python or accelerate")
    if gpus < 1:
        raise StepInputError(f"--gpus {gpus}: must be at least 1 (on a CPU-only machine, 1 trains on the CPU)")
    if cuda_devices and gpus > cuda_devices:
        raise StepInputError(f"--gpus {gpus}: only {cuda_devices} CUDA device(s) are visible; request "
                             f"{gpus} in the pod's GPU limit or lower train.gpus")
    if not cuda_devices and gpus > 1:
        raise StepInputError(f"--gpus {gpus}: no CUDA device is visible, and multi-process training needs "
                             f"GPUs; check the pod's GPU limit and drivers, or use --gpus 1 to train on the CPU")
    if requested == "auto":
        if nodes > 1:
            return "torchrun"
        return "accelerate" if cuda_devices else "python"
    if requested == "python" and gpus > 1:
        raise StepInputError(f"--launcher python runs one process; it cannot use --gpus {gpus}")
    return requested


def check_shm(gpus: int, shm_bytes: int | None = None) -> None:
    """Fail fast where multi-GPU training would crash later on a too small /dev/shm."""
    if gpus < 2:
        return
    if shm_bytes is None:
        if not SHM_PATH.is_dir():
            return
        shm_bytes = shutil.disk_usage(SHM_PATH).total
    if shm_bytes < MIN_SHM_BYTES:
        raise StepInputError(
            f"/dev/shm is {shm_bytes // (1 << 20)} MiB; training on {gpus} GPUs needs at least "
            f"{MIN_SHM_BYTES >> 30} GiB there (a memory-backed emptyDir, train.shm_size in the pipeline config)")


def axolotl_command(subcommand: str, config: Path, *args: str) -> list[str]:
    """`axolotl SUBCOMMAND CONFIG ARGS` with this interpreter, so the step and Axolotl share one environment."""
    return [sys.executable, "-m", "axolotl.cli.main", subcommand, str(config), *args]


def train_command(config: Path, launcher: Launcher, gpus: int, rendezvous: Rendezvous | None = None) -> list[str]:
    if launcher == "torchrun":
        if rendezvous is None:
            raise ValueError("the torchrun launcher needs a rendezvous")
        # Axolotl passes what follows `--` to torchrun unchanged.
        return axolotl_command("train", config, "--launcher", launcher, "--", *rendezvous.torchrun_args(gpus))
    launcher_args = ["--num-processes", str(gpus)] if launcher == "accelerate" else []
    return axolotl_command("train", config, "--launcher", launcher, *launcher_args)


# The thread counts torch reads (its intra-op pool); the pod sets them from its CPU limit.
TORCH_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def child_env(base: dict[str, str] | None = None, processes: int = 1) -> dict[str, str]:
    """The environment for Axolotl: this interpreter's bin first on PATH, for the `accelerate` it execs,
    and the pod's torch threads shared among the node's `processes` trainers.

    accelerate hands every worker the launcher's OMP_NUM_THREADS and torchrun keeps it, so three
    GPU workers in a `cpu: 12` pod would each start 12 threads. torch has no variable for its
    inter-op pool (sized from the node's cores), but eager training never starts that pool: only
    inter-op tasks (torch.jit.fork) do (tests/test_train_threads.py).
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env["PATH"]]) if env.get("PATH") else bin_dir
    env.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    for name in TORCH_THREAD_VARIABLES:
        if env.get(name, "").strip().isdigit() and int(env[name]) > 0:
            env[name] = str(max(1, int(env[name]) // max(1, processes)))
    return env


def run_streaming(command: list[str], env: dict[str, str]) -> int:
    """Run `command` with the step's stdout/stderr (the log streams live); return its exit code.

    SIGTERM/SIGINT (a pod being stopped) go on to the child, so the trainer stops cleanly
    instead of being orphaned. A child killed by a signal returns 128 + the signal, as a shell does;
    so does one that exits 0 after being stopped (Axolotl's SIGINT handler saves the weights so far
    and exits 0): a stopped run is not a finished one, and must not be recorded as done.
    """
    child = subprocess.Popen(command, env=env)
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0 and forwarded:
        return 128 + forwarded[0]
    return 128 - code if code < 0 else code
