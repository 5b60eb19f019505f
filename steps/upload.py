"""Publish the merged model with its model card: to a hub repo in one commit, or to a local folder.

`--card-only` runs once the evaluation has finished: it regenerates README.md with the same card
builder, now with the MMLU-Pro scores of `--summary`, and publishes that file alone over the
earlier upload (one hub commit to the existing repo, or an atomic rewrite of DIR/README.md).

The hub token comes from HF_TOKEN only (a Kubernetes Secret) and is never logged. Transient
hub errors (timeouts, dropped connections, 429 and 5xx) are retried with exponential
backoff; a rejected token or a missing repo fails at once. An incomplete model folder is
refused before anything is sent.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from steps.common import (
    StepFailure,
    StepInputError,
    check_replaceable_folder,
    step_errors,
    step_main,
    write_text_atomic,
)
from steps.contract import REPO_ID
from steps.model_card import CardInputs, load_summary, render_model_card
from steps.training.axolotl_config import load_yaml_config
from steps.training.logs import step_logger
from steps.training.model_folder import model_folder_problems

LOG = step_logger("steps.upload")
HUB_TARGET = "hub"
CARD_NAME = "README.md"
# The statuses huggingface_hub's own http_backoff retries.
TRANSIENT_STATUS = (429, 500, 502, 503, 504)
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0
T = TypeVar("T")


class UploadError(StepFailure):
    """The hub failed for good (retries spent, or an error no retry fixes)."""


def model_files(model_dir: Path) -> list[Path]:
    """The files to publish, relative to `model_dir`: all but hidden ones and a README the card replaces."""
    files = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if path.is_file() and relative.as_posix() != CARD_NAME and not any(p.startswith(".") for p in relative.parts):
            files.append(relative)
    return files


def write_local(model_dir: Path, target: Path, card: str) -> Path:
    """Write the model files and the card to `target`, replacing it whole (never half-written)."""
    check_replaceable_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for relative in model_files(model_dir):
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model_dir / relative, staging / relative)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")
        if target.exists():
            retired = target.with_name(f".{target.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def is_transient(error: BaseException) -> bool:
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, (httpx.TimeoutException, httpx.NetworkError)):
        return True
    response = getattr(error, "response", None) if isinstance(error, HfHubHTTPError) else None
    return response is not None and response.status_code in TRANSIENT_STATUS


def with_backoff(action: Callable[[], T], what: str, attempts: int) -> T:
    """Run `action`, retrying transient hub errors with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if not is_transient(error) or attempt == attempts:
                raise
            wait = min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS)
            LOG.warning("%s failed (%s); retry %d of %d in %.0f s", what, _describe(error), attempt,
                        attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _describe(error: BaseException) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status else type(error).__name__


def _commit(repo_id: str, operations: Callable[[], list], message: str, *, token: str, attempts: int,
            endpoint: str | None, create_private: bool | None) -> str:
    """One commit of `operations()` to `repo_id`, creating the repo first unless `create_private` is None.

    Transient errors are retried with backoff; returns the commit URL.
    """
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    try:
        if create_private is not None:
            repo_url = with_backoff(lambda: api.create_repo(repo_id, private=create_private, exist_ok=True),
                                    f"creating {repo_id}", attempts)
            LOG.info("repo %s (%s)", repo_url, "private" if create_private else "public")
        commit = with_backoff(lambda: api.create_commit(repo_id, operations=operations(), commit_message=message),
                              f"uploading to {repo_id}", attempts)
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if isinstance(error, RepositoryNotFoundError) or status == 404:
            hint = ("" if create_private is not None
                    else " (--card-only updates the card of a model the upload step published: upload it first)")
            raise StepInputError(f"--repo-id {repo_id}: no such model repo on the hub, or HF_TOKEN cannot see "
                                 f"it{hint}") from None
        if status in (401, 403):
            raise StepInputError(f"the hub refused HF_TOKEN for {repo_id} (HTTP {status}); it needs write access "
                                 f"to the {repo_id.split('/')[0]} namespace") from None
        raise UploadError(f"uploading to {repo_id} failed: {' '.join(str(error).split())}") from None
    except httpx.HTTPError as error:
        raise UploadError(f"uploading to {repo_id} failed: {type(error).__name__}: {error}") from None
    return commit.commit_url


def _card_operation(card: str):
    from huggingface_hub import CommitOperationAdd

    return CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode("utf-8"))


def push_to_hub(model_dir: Path, repo_id: str, card: str, *, private: bool, token: str,
                attempts: int, endpoint: str | None = None) -> str:
    """Create the repo if needed and commit the model and card in one commit; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd

    files = model_files(model_dir)

    def operations() -> list[CommitOperationAdd]:
        # A CommitOperationAdd can be committed once, so each attempt gets fresh ones.
        return [_card_operation(card),
                *(CommitOperationAdd(path_in_repo=f.as_posix(), path_or_fileobj=str(model_dir / f)) for f in files)]

    return _commit(repo_id, operations, "Upload model fine-tuned by tunebench", token=token, attempts=attempts,
                   endpoint=endpoint, create_private=private)


def push_card_to_hub(repo_id: str, card: str, *, token: str, attempts: int, endpoint: str | None = None) -> str:
    """Commit README.md alone to the existing repo `repo_id` (its visibility and other files untouched)."""
    return _commit(repo_id, lambda: [_card_operation(card)], "Update model card with MMLU-Pro scores (tunebench)",
                   token=token, attempts=attempts, endpoint=endpoint, create_private=None)


def write_local_card(target: Path, card: str) -> Path:
    """Replace README.md of an earlier local upload in `target` atomically; nothing else is touched."""
    if not target.is_dir():
        raise StepInputError(f"--target {target}: no such folder; --card-only rewrites the card of an earlier "
                             "upload, so run the upload step to it first")
    problems = ([] if (target / CARD_NAME).is_file() else [f"{CARD_NAME} is missing"]) + model_folder_problems(target)
    if problems:
        raise StepInputError(f"--target {target}: does not hold an upload ({'; '.join(problems)}); --card-only "
                             "rewrites the card of an earlier upload, so run the upload step to it first")
    write_text_atomic(target / CARD_NAME, card)
    return target / CARD_NAME


def build_card(repo_id: str, *, axolotl_config: Path | None = None, dataset: str | None = None,
               dataset_revision: str | None = None, base_model: str | None = None,
               summary: Path | None = None, summary_id: str | None = None) -> str:
    """The README.md model card, the same for a full upload and a card-only update."""
    cfg = load_yaml_config(axolotl_config, what="--axolotl-config") if axolotl_config else None
    scores, scores_markdown = load_summary(summary, summary_id) if summary else (None, None)
    return render_model_card(CardInputs(
        repo_id=repo_id, base_model=base_model or (cfg or {}).get("base_model"), dataset=dataset,
        dataset_revision=dataset_revision, axolotl_config=cfg, scores=scores, scores_markdown=scores_markdown))


def _check_repo_id(repo_id: str) -> None:
    if not REPO_ID.fullmatch(repo_id):
        raise StepInputError(f"--repo-id {repo_id!r}: not a hub repo id; use org/name")


def _hub_token() -> str:
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise StepInputError("HF_TOKEN is not set; a hub upload needs a token with write access "
                             "(cluster.hf_token_secret), or use --target DIR for a local folder")
    return token


def upload(model_dir: Path, repo_id: str, *, private: bool = True, target: str = HUB_TARGET,
           axolotl_config: Path | None = None, dataset: str | None = None, dataset_revision: str | None = None,
           base_model: str | None = None, summary: Path | None = None, retries: int = 5,
           endpoint: str | None = None, summary_id: str | None = None) -> str:
    """Publish `model_dir` with a model card; returns the commit URL or the local folder."""
    _check_repo_id(repo_id)
    problems = model_folder_problems(model_dir)
    if problems:
        raise StepInputError(f"--model-dir {model_dir}: refusing to upload an incomplete model ({'; '.join(problems)})")
    card = build_card(repo_id, axolotl_config=axolotl_config, dataset=dataset, dataset_revision=dataset_revision,
                      base_model=base_model, summary=summary, summary_id=summary_id)
    if target != HUB_TARGET:
        written = write_local(model_dir, Path(target), card)
        LOG.info("wrote %s with its model card", written)
        return str(written)
    url = push_to_hub(model_dir, repo_id, card, private=private, token=_hub_token(), attempts=retries + 1,
                      endpoint=endpoint)
    LOG.info("uploaded: %s", url)
    return url


def publish_card(repo_id: str, *, summary: Path | None, target: str = HUB_TARGET,
                 axolotl_config: Path | None = None, dataset: str | None = None,
                 dataset_revision: str | None = None, base_model: str | None = None, retries: int = 5,
                 endpoint: str | None = None, summary_id: str | None = None) -> str:
    """Regenerate the card of an earlier upload, now with the MMLU-Pro scores, and publish README.md alone.

    With `summary_id` (aggregate's output parameter in the DAG), a summary.json that another
    aggregate invocation wrote is refused before anything is published. Returns the commit URL,
    or the README.md rewritten in a local target.
    """
    if summary is None:
        raise StepInputError("--card-only needs --summary RUN/summary/summary.json (the scores the card adds)")
    _check_repo_id(repo_id)
    card = build_card(repo_id, axolotl_config=axolotl_config, dataset=dataset, dataset_revision=dataset_revision,
                      base_model=base_model, summary=summary, summary_id=summary_id)
    if target != HUB_TARGET:
        written = write_local_card(Path(target), card)
        LOG.info("rewrote %s with the MMLU-Pro scores", written)
        return str(written)
    url = push_card_to_hub(repo_id, card, token=_hub_token(), attempts=retries + 1, endpoint=endpoint)
    LOG.info("updated the model card: %s", url)
    return url


# --- command line ------------------------------------------------------------------------

def parse_bool(value: str, option: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise StepInputError(f"{option} {value!r}: use true or false")


@step_errors
def upload_command(
    repo_id: Annotated[str, typer.Option(help="Hub repo, org/name (also titles the card of a local target).")],
    model_dir: Annotated[Path | None, typer.Option(
        help="The merged model folder (RUN/train/output/merged); required, except that --card-only does not read "
             "it.")] = None,
    private: Annotated[str, typer.Option(
        help="true or false: visibility of a repo this creates (--card-only creates none).")] = "true",
    target: Annotated[str, typer.Option(help="`hub`, or a local folder to write the same files to.")] = HUB_TARGET,
    axolotl_config: Annotated[Path | None, typer.Option(help="The final Axolotl config, for the card.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Training dataset id, for the card.")] = None,
    dataset_revision: Annotated[str | None, typer.Option(help="Its revision, for the card.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Base model id, for the card (default: the config's).")] = None,
    summary: Annotated[Path | None, typer.Option(
        help="MMLU-Pro summary.json from the aggregate step, for the card's score table (required with "
             "--card-only).")] = None,
    summary_id: Annotated[str | None, typer.Option(
        help="Refuse a --summary whose id differs: aggregate's summary-id output, so that only the summary "
             "this run's aggregate wrote is published.")] = None,
    card_only: Annotated[bool, typer.Option(
        "--card-only", help="Publish only README.md, regenerated with the scores of --summary, over an "
                            "earlier upload: one hub commit to the existing repo, or DIR/README.md rewritten "
                            "in place.")] = False,
    retries: Annotated[int, typer.Option(help="Retries of a transient hub error, with exponential backoff.")] = 5,
) -> None:
    """Upload the merged model and its model card to the hub (token from HF_TOKEN) or a local folder;
    with --card-only, update just the card of an earlier upload once the scores exist."""
    common: dict[str, Any] = dict(axolotl_config=axolotl_config, dataset=dataset, dataset_revision=dataset_revision,
                  base_model=base_model, summary=summary, summary_id=summary_id, retries=max(retries, 0),
                  target=target)
    is_private = parse_bool(private, "--private")
    if card_only:
        publish_card(repo_id, **common)
    elif model_dir is None:
        raise StepInputError("--model-dir is required: the merged model folder to upload (RUN/train/output/merged)")
    else:
        upload(model_dir, repo_id, private=is_private, **common)


def main() -> None:
    step_main(upload_command)


if __name__ == "__main__":
    main()
