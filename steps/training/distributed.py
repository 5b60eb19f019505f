"""Training across nodes: the torchrun rendezvous every node joins, and what a CPU-only group needs.

One `steps.train` runs per node (a JobSet pod, or a local process of `tunebench run`); each
launches `axolotl train --launcher torchrun` with the same rendezvous, so the group forms
wherever the pods land. The rendezvous is static: node N is torch's group rank N, so node 0
(the JobSet's index 0, the pod `argo logs` shows first) is global rank 0, hosts the store
at `--master-addr`, logs the losses and saves the checkpoints. (Axolotl's docs use the c10d
backend, which ranks nodes by host name and process id: node 0 would be rank 0 only by
chance.) torchrun itself never restarts a failed group (`--max_restarts 0`): JobSet's
failurePolicy restarts every node together, each resuming from the same checkpoint on the
shared volume.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from steps.common import StepInputError

DEFAULT_MASTER_PORT = 29500
# Axolotl adds a random --rdzv_id per node where none is given; every node names the same one.
RDZV_ID_PREFIX = "tunebench-"
# Axolotl sets `device_map = {"": LOCAL_RANK}` whenever WORLD_SIZE > 1, an accelerator index
# that transformers refuses on a CPU ("Cannot access accelerator device when none is
# available"); a `max_memory` with only a CPU budget makes Axolotl place the model on the
# CPU instead. The budget bounds placement, it allocates nothing.
CPU_PLACEMENT_BUDGET = "1024GiB"
# ACCELERATE_USE_CPU: without it, transformers' TrainingArguments builds a non-distributed
# state on a CPU and each node trains alone on the whole dataset (same output folder, no
# error); with it the Trainer joins the group over gloo.
# ACCELERATE_TORCH_DEVICE: accelerate names a gloo process's device `cpu:0`, and the Trainer
# loads a checkpoint's optimizer state with that as map_location, which torch.load cannot
# restore ("don't know how to restore data location ... cpu:0"): every resume would fail.
CPU_DISTRIBUTED_ENV = {"ACCELERATE_USE_CPU": "true", "ACCELERATE_TORCH_DEVICE": "cpu"}


@dataclass(frozen=True)
class Rendezvous:
    """Where this node meets the others: the same for every node but `node_rank`."""

    nodes: int
    node_rank: int
    master_addr: str
    master_port: int = DEFAULT_MASTER_PORT
    rdzv_id: str = ""

    @property
    def is_primary(self) -> bool:
        """Node 0 writes what the pipeline reads afterwards (final config, done.json); the others only train."""
        return self.node_rank == 0

    def torchrun_args(self, processes_per_node: int) -> list[str]:
        return ["--nnodes", str(self.nodes), "--nproc_per_node", str(processes_per_node),
                "--node_rank", str(self.node_rank), "--rdzv_backend", "static",
                "--rdzv_endpoint", f"{self.master_addr}:{self.master_port}", "--rdzv_id", self.rdzv_id,
                "--max_restarts", "0"]


def rendezvous_id(run_dir: Path) -> str:
    """The same on every node of one run (they share the run folder), different between runs."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode("utf-8")).hexdigest()[:12]
    return RDZV_ID_PREFIX + digest


def rendezvous(nodes: int, node_rank: int | None, master_addr: str | None, master_port: int,
               run_dir: Path) -> Rendezvous | None:
    """The checked rendezvous of a multi-node run, or None for one node."""
    if nodes < 1:
        raise StepInputError(f"--nodes {nodes}: must be at least 1")
    if nodes == 1:
        extra = [flag for flag, value in (("--node-rank", node_rank), ("--master-addr", master_addr))
                 if value not in (None, 0, "")]
        if extra:
            raise StepInputError(f"{', '.join(extra)} only apply with --nodes 2 or more (got --nodes 1)")
        return None
    if node_rank is None or not 0 <= node_rank < nodes:
        raise StepInputError(f"--node-rank {node_rank}: must be 0 to {nodes - 1} with --nodes {nodes} "
                             f"(a JobSet pod passes its JOB_COMPLETION_INDEX)")
    if not master_addr:
        raise StepInputError(f"--master-addr is required with --nodes {nodes}: the host name of node 0 "
                             f"(JobSet: <jobset>-<replicated-job>-0-0.<jobset>)")
    if not 1 <= master_port <= 65535:
        raise StepInputError(f"--master-port {master_port}: must be a TCP port, 1 to 65535")
    return Rendezvous(nodes, node_rank, master_addr, master_port, rendezvous_id(run_dir))


# --- the request: what every node trains, without the workflow's parameters in the JobSet manifest ------------

REQUEST_FIELDS = ("config", "overrides", "base_model", "base_model_revision", "dataset", "run_dir", "gpus")


@dataclass(frozen=True)
class TrainRequest:
    """The settings of one training run, as a JSON file on the shared volume.

    Argo substitutes a `resource` template's parameters into the manifest's YAML text, where a
    value with a quote and a line break would add fields to the JobSet's pods. So a plain
    container step (its parameters are argv elements, never parsed) writes them here, and the
    JobSet's pods read this file: the only placeholder left in the manifest is the workflow's name.
    """

    config: str
    base_model: str
    dataset: str
    run_dir: str
    gpus: int = 1
    overrides: str | None = None
    base_model_revision: str | None = None

    def write(self, path: Path) -> None:
        from steps.common import write_json_atomic

        write_json_atomic(path, {name: getattr(self, name) for name in REQUEST_FIELDS})

    @classmethod
    def read(cls, path: Path) -> TrainRequest:
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StepInputError(f"--request {path}: cannot read the training request ({error})") from None
        if not isinstance(data, dict) or sorted(data) != sorted(REQUEST_FIELDS):
            raise StepInputError(f"--request {path}: expected a JSON object of {', '.join(REQUEST_FIELDS)} "
                                 f"(steps.train --write-request writes it)")
        types = {"gpus": (int,), "overrides": (str, type(None)), "base_model_revision": (str, type(None))}
        wrong = [name for name in REQUEST_FIELDS if not isinstance(data[name], types.get(name, (str,)))
                 or isinstance(data[name], bool)]
        if wrong:
            raise StepInputError(f"--request {path}: wrong type of {', '.join(wrong)}")
        return cls(**data)
