"""Fine-tune with `axolotl train`: build and validate the final config, launch, resume after a restart.

A pod restarted mid-run (preempted node, OOM-killed rank) finds its checkpoints on the
workspace volume and resumes from the newest complete one instead of starting over; a
finished run is not redone. The final config is written to RUN/train/axolotl.yaml, so a
person can see exactly what ran.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import EXIT_FAILURE, StepInputError, fail, write_json_atomic
from steps.training import checkpoints
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
    LauncherChoice,
    check_shm,
    child_env,
    cuda_device_count,
    require_axolotl,
    resolve_launcher,
    run_streaming,
    train_command,
)
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


def prepare_resume(cfg: dict[str, Any], output_dir: Path) -> checkpoints.Checkpoint | None:
    """Drop partial checkpoints and point `cfg` at the newest complete one, if any."""
    for removed in checkpoints.remove_incomplete(output_dir):
        LOG.warning("removed %s: an incomplete checkpoint (the previous run stopped while saving it)", removed.path)
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
          launcher: LauncherChoice = "auto", save_steps: int | None = None) -> int:
    """Train (or resume, or skip a finished run); returns the exit code of `axolotl train`."""
    require_axolotl()
    check_dataset(dataset)
    if save_steps is not None and save_steps < 1:
        raise StepInputError(f"--save-steps {save_steps}: must be at least 1")
    cuda_devices = cuda_device_count()
    chosen = resolve_launcher(launcher, gpus, cuda_devices)
    processes = gpus if chosen == "accelerate" else 1
    paths = TrainPaths(run_dir)
    cfg = build_final_config(load_yaml_config(config), parse_overrides(overrides), PipelineSettings(
        base_model=base_model, dataset=dataset, paths=paths, base_model_revision=base_model_revision,
        gpus=processes, on_cpu=cuda_devices == 0, save_steps=save_steps))
    if _guard_against_a_different_run(paths, cfg) and paths.done.exists() \
            and not trained_output_problems(cfg, paths.output):
        LOG.info("training already finished (%s); nothing to do", paths.done)
        return 0

    check_shm(processes)
    validate_config(cfg, *probed_capabilities(processes))
    ignored = unknown_keys(cfg)
    if ignored:
        LOG.warning("Axolotl ignores these keys it does not know (a typo?): %s", ", ".join(ignored))
    resume = prepare_resume(cfg, paths.output)
    write_final_config(cfg, paths.config)
    LOG.info("final config: %s", paths.config)
    _log_hub_cache()
    if resume is not None:
        LOG.info("resuming from %s (step %d)", resume.path, resume.step)
    else:
        LOG.info("no checkpoint in %s: starting from step 0", paths.output)
    command = train_command(paths.config, chosen, gpus)
    LOG.info("running: %s", " ".join(command))
    code = run_streaming(command, child_env())
    if code != 0:
        LOG.error("axolotl train exited with code %d", code)
        return code
    return _finish(cfg, paths, resume)


def _log_hub_cache() -> None:
    from huggingface_hub import constants

    if "HF_HOME" in os.environ or "HF_HUB_CACHE" in os.environ:
        LOG.info("HF cache: %s", constants.HF_HUB_CACHE)
    else:
        LOG.warning("HF_HOME is not set: the base model goes to %s, which a restarted pod loses; point HF_HOME "
                    "at a volume so it downloads once", constants.HF_HUB_CACHE)


# --- command line ------------------------------------------------------------------------

def train_command(
    config: Annotated[Path, typer.Option(help="The user's Axolotl YAML (e.g. configs/axolotl/X.yaml).")],
    base_model: Annotated[str, typer.Option(help="Hub id or local directory of the base model.")],
    dataset: Annotated[Path, typer.Option(help="The converted question/answer parquet (RUN/data/train.parquet).")],
    run_dir: Annotated[Path, typer.Option(help="RUN/train: gets axolotl.yaml, prepared/ and output/.")],
    gpus: Annotated[int, typer.Option(help="GPUs (training processes); 1 on a CPU-only machine.")] = 1,
    overrides: Annotated[str | None, typer.Option(help="JSON object of top-level Axolotl keys set over --config.")] = None,
    base_model_revision: Annotated[str | None, typer.Option(help="Hub revision of the base model to pin.")] = None,
    launcher: Annotated[str, typer.Option(help="auto (accelerate on GPUs, python on a CPU), python or accelerate.")] = "auto",
    save_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps (default: the YAML's, else 100).")] = None,
) -> None:
    """Fine-tune with Axolotl; a restarted run resumes from its newest complete checkpoint."""
    if launcher not in ("auto", "python", "accelerate"):
        fail(f"--launcher {launcher!r}: use auto, python or accelerate")
    try:
        code = train(config, base_model=base_model, dataset=dataset, run_dir=run_dir, gpus=gpus,
                     overrides=overrides, base_model_revision=base_model_revision,
                     launcher=launcher, save_steps=save_steps)  # type: ignore[arg-type]
    except StepInputError as error:
        fail(str(error))
    raise typer.Exit(code)


def main() -> None:
    from steps.common import step_main

    step_main(train_command)


if __name__ == "__main__":
    main()
