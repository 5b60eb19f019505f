"""Fine-tune with `axolotl train`: build and validate the final config, launch, resume after a restart.

A pod restarted mid-run (preempted node, OOM-killed rank) finds its checkpoints on the
workspace volume and resumes from the newest complete one instead of starting over; a
finished run is not redone. The final config is written to RUN/train/axolotl.yaml, so a
person can see exactly what ran.

Across nodes (`--nodes N`, one `steps.train` per node) every node builds the same config and
resumes from the same checkpoint, and launches torchrun into one rendezvous; only node 0
writes RUN/train (the final config, done.json, the removal of partial checkpoints), so
nodes never race on the shared volume. The others run from a copy of the config in their
own temporary folder.
"""
from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import EXIT_FAILURE, StepInputError, fail, step_main, write_json_atomic
from steps.contract import EXIT_OK, FINAL_AXOLOTL_CONFIG
from steps.training import checkpoints
from steps.training.distributed import CPU_DISTRIBUTED_ENV, DEFAULT_MASTER_PORT, Rendezvous, TrainRequest, rendezvous
from steps.training.axolotl_config import (
    PipelineSettings,
    TrainPaths,
    build_final_config,
    changed_keys,
    load_yaml_config,
    parse_overrides,
    probed_capabilities,
    unknown_keys,
    validate_config,
    write_final_config,
)
from steps.training.launch import (
    Launcher,
    LauncherChoice,
    check_shm,
    child_env,
    cuda_device_count,
    require_axolotl,
    resolve_launcher,
    run_streaming,
)
from steps.training.launch import train_command as axolotl_train_command
from steps.training.in_process import prepare_axolotl_environment, train_in_process
from steps.training.logs import step_logger
from steps.training.model_folder import adapter_problems, model_folder_problems

LOG = step_logger("steps.train")
REQUIRED_COLUMNS = ("question", "answer")


def check_dataset(dataset: Path) -> None:
    import pyarrow.parquet as pq

    if not dataset.is_file():
        raise StepInputError(f"--dataset {dataset}: no such file (steps.convert_dataset writes RUN/data/train.parquet)")
    try:
        schema = pq.read_schema(dataset)
    except Exception as error:  # pyarrow raises several types for a file that is not parquet
        raise StepInputError(f"--dataset {dataset}: not a readable parquet file ({error})") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in schema.names]
    if missing:
        raise StepInputError(f"--dataset {dataset}: missing column(s) {', '.join(missing)} (has "
                             f"{', '.join(schema.names)}); alpaca_chat.load_qa reads question and answer")


def trained_output_problems(cfg: dict[str, Any], output_dir: Path) -> list[str]:
    """What is missing from a finished run's output: the adapter, or the full model without one."""
    return adapter_problems(output_dir) if cfg.get("adapter") else model_folder_problems(output_dir)


def _has_training_outputs(paths: TrainPaths) -> bool:
    return paths.done.exists() or bool(checkpoints.list_checkpoints(paths.output)) or \
        (paths.output / "adapter_model.safetensors").exists()


def _guard_against_a_different_run(paths: TrainPaths, cfg: dict[str, Any]) -> bool:
    """True when RUN/train already holds this same config; refuse to mix in another run's checkpoints."""
    if not paths.config.exists():
        return False
    previous = load_yaml_config(paths.config, what="existing")
    changed = changed_keys(previous, cfg)
    if changed and _has_training_outputs(paths):
        raise StepInputError(
            f"--run-dir {paths.run_dir} already holds training with a different config ({', '.join(changed)} "
            f"changed); resuming it would mix two runs: use a fresh --run-dir, or delete that one")
    return not changed


def prepare_resume(cfg: dict[str, Any], output_dir: Path, *, owner: bool = True) -> checkpoints.Checkpoint | None:
    """Point `cfg` at the newest complete checkpoint, if any; the `owner` (node 0) also deletes partial ones.

    Every node picks the same checkpoint: the group is down while it starts, so nothing is
    being saved, and a partial checkpoint is never complete whether or not it is deleted yet.
    """
    if owner:
        for removed in checkpoints.remove_incomplete(output_dir):
            LOG.warning("removed %s: an incomplete checkpoint (the previous run stopped while saving it)",
                        removed.path)
    resume = checkpoints.newest_complete(output_dir)
    if resume is not None:
        cfg["resume_from_checkpoint"] = str(resume.path)
    return resume


def _finish(cfg: dict[str, Any], paths: TrainPaths, resume: checkpoints.Checkpoint | None) -> int:
    """Check the trained output and record the run as done, so a rerun is a no-op."""
    problems = trained_output_problems(cfg, paths.output)
    if problems:
        LOG.error("axolotl train exited 0 but the output is incomplete: %s", "; ".join(problems))
        return EXIT_FAILURE
    final = checkpoints.newest_complete(paths.output)
    write_json_atomic(paths.done, {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output_dir": str(paths.output),
        "global_step": final.step if final else None,
        "resumed_from": str(resume.path) if resume else None,
    })
    LOG.info("training finished: %s", paths.output)
    return 0


def train(config: Path, *, base_model: str, dataset: Path, run_dir: Path, gpus: int = 1,
          overrides: str | None = None, base_model_revision: str | None = None,
          launcher: LauncherChoice = "auto", save_steps: int | None = None, nodes: int = 1,
          node_rank: int | None = None, master_addr: str | None = None,
          master_port: int = DEFAULT_MASTER_PORT) -> int:
    """Train (or resume, or skip a finished run); returns the exit code of `axolotl train`."""
    require_axolotl()
    prepare_axolotl_environment()
    check_dataset(dataset)
    if save_steps is not None and save_steps < 1:
        raise StepInputError(f"--save-steps {save_steps}: must be at least 1")
    group = rendezvous(nodes, node_rank, master_addr, master_port, run_dir)
    cuda_devices = cuda_device_count()
    chosen = resolve_launcher(launcher, gpus, cuda_devices, nodes)
    processes = gpus if chosen in ("accelerate", "torchrun") else 1
    paths = TrainPaths(run_dir)
    cfg = build_final_config(load_yaml_config(config), parse_overrides(overrides), PipelineSettings(
        base_model=base_model, dataset=dataset, paths=paths, base_model_revision=base_model_revision,
        gpus=processes, on_cpu=cuda_devices == 0, save_steps=save_steps, nodes=nodes))
    if _guard_against_a_different_run(paths, cfg) and paths.done.exists() \
            and not trained_output_problems(cfg, paths.output):
        LOG.info("training already finished (%s); nothing to do", paths.done)
        return 0

    check_shm(processes)
    validate_config(cfg, *probed_capabilities(processes * nodes))
    ignored = unknown_keys(cfg)
    if ignored:
        LOG.warning("Axolotl ignores these keys it does not know (a typo?): %s", ", ".join(ignored))
    primary = group is None or group.is_primary
    resume = prepare_resume(cfg, paths.output, owner=primary)
    _log_hub_cache()
    if resume is not None:
        LOG.info("resuming from %s (step %d)", resume.path, resume.step)
    else:
        LOG.info("no checkpoint in %s: starting from step 0", paths.output)
    if primary:
        write_final_config(cfg, paths.config)
        LOG.info("final config: %s", paths.config)
        code = _launch(paths.config, chosen, processes, group, cuda_devices)
        return code if code != 0 else _finish(cfg, paths, resume)
    with tempfile.TemporaryDirectory(prefix="tunebench-train-") as scratch:
        node_config = Path(scratch) / FINAL_AXOLOTL_CONFIG
        write_final_config(cfg, node_config)
        return _launch(node_config, chosen, processes, group, cuda_devices)


def _launch(config_file: Path, chosen: Launcher, processes: int, group: Rendezvous | None, cuda_devices: int) -> int:
    if chosen == "python":  # one process: Axolotl runs it in its own interpreter, so this one can too
        LOG.info("running: axolotl train %s --launcher python, in this process", config_file)
        return train_in_process(config_file, LOG)
    env = child_env(processes=processes)
    if group is not None:
        LOG.info("node %d of %d: rendezvous %s at %s:%d", group.node_rank, group.nodes, group.rdzv_id,
                 group.master_addr, group.master_port)
        if not cuda_devices:
            env.update(CPU_DISTRIBUTED_ENV)
    command = axolotl_train_command(config_file, chosen, processes, group)
    LOG.info("running: %s", " ".join(command))
    code = run_streaming(command, env)
    if code != 0:
        LOG.error("axolotl train exited with code %d", code)
    return code


def _log_hub_cache() -> None:
    from huggingface_hub import constants

    if "HF_HOME" in os.environ or "HF_HUB_CACHE" in os.environ:
        LOG.info("HF cache: %s", constants.HF_HUB_CACHE)
    else:
        LOG.warning("HF_HOME is not set: the base model goes to %s, which a restarted pod loses; point HF_HOME "
                    "at a volume so it downloads once", constants.HF_HUB_CACHE)


# --- command line ------------------------------------------------------------------------

def train_command(
    config: Annotated[Path | None, typer.Option(help="The user's Axolotl YAML (e.g. configs/axolotl/X.yaml).")] = None,
    base_model: Annotated[str | None, typer.Option(help="Hub id or local directory of the base model.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="The converted question/answer parquet (RUN/data/train.parquet).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="RUN/train: gets axolotl.yaml, prepared/ and output/.")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs (training processes) per node; 1 on a CPU-only machine.")] = None,
    overrides: Annotated[str | None, typer.Option(help="JSON object of top-level Axolotl keys set over --config.")] = None,
    base_model_revision: Annotated[str | None, typer.Option(help="Hub revision of the base model to pin.")] = None,
    launcher: Annotated[str, typer.Option(help="auto (accelerate on GPUs, python on a CPU), python or accelerate.")] = "auto",
    save_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps (default: the YAML's, else 100).")] = None,
    nodes: Annotated[int, typer.Option(help="Nodes training together (one steps.train per node, torchrun).")] = 1,
    node_rank: Annotated[int | None, typer.Option(help="This node's index, 0 to nodes-1 (JobSet: JOB_COMPLETION_INDEX).")] = None,
    master_addr: Annotated[str | None, typer.Option(help="Host name of node 0, where the rendezvous is hosted.")] = None,
    master_port: Annotated[int, typer.Option(help="TCP port of the rendezvous on node 0.")] = DEFAULT_MASTER_PORT,
    write_request: Annotated[Path | None, typer.Option(
        help="Write --config ... --gpus to this JSON file for the nodes of a JobSet, and exit.")] = None,
    request: Annotated[Path | None, typer.Option(
        help="Train what this file (from --write-request) says, instead of --config ... --gpus.")] = None,
) -> None:
    """Fine-tune with Axolotl; a restarted run resumes from its newest complete checkpoint."""
    if launcher not in ("auto", "python", "accelerate", "torchrun"):
        fail(f"--launcher {launcher!r}: use auto, python, accelerate or torchrun")
    try:
        settings = _request(request, config=config, base_model=base_model, dataset=dataset, run_dir=run_dir,
                            gpus=gpus, overrides=overrides, base_model_revision=base_model_revision)
        if write_request is not None:
            parse_overrides(settings.overrides)  # bad JSON fails here, before any GPU is requested
            settings.write(write_request)
            LOG.info("training request for the nodes: %s", write_request)
            raise typer.Exit(EXIT_OK)
        code = train(Path(settings.config), base_model=settings.base_model, dataset=Path(settings.dataset),
                     run_dir=Path(settings.run_dir), gpus=settings.gpus, overrides=settings.overrides,
                     base_model_revision=settings.base_model_revision, launcher=launcher,  # type: ignore[arg-type]
                     save_steps=save_steps, nodes=nodes, node_rank=node_rank, master_addr=master_addr,
                     master_port=master_port)
    except StepInputError as error:
        fail(str(error))
    raise typer.Exit(code)


def _request(request: Path | None, **flags: Any) -> TrainRequest:
    """The run's settings: from --request, or from the flags (never both)."""
    if request is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        if given:
            raise StepInputError(f"--request {request} says what to train; drop {', '.join(given)}")
        return TrainRequest.read(request)
    missing = [f"--{name.replace('_', '-')}" for name in ("config", "base_model", "dataset", "run_dir")
               if flags[name] is None]
    if missing:
        raise StepInputError(f"{', '.join(missing)} required (or --request FILE)")
    return TrainRequest(**{**flags, "config": str(flags["config"]), "dataset": str(flags["dataset"]),
                           "run_dir": str(flags["run_dir"]), "gpus": 1 if flags["gpus"] is None else flags["gpus"]})


def main() -> None:
    step_main(train_command)


if __name__ == "__main__":
    main()
