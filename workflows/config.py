"""The pipeline config: one YAML file that says what to fine-tune, how to gate, evaluate and publish it, and where it runs."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from steps.contract import REPO_ID, SUBJECTS
from steps.safe_yaml import YamlInputError, printable, read_yaml
from workflows.argo.jobset import GENERATED_SUFFIX, POD_NAME_MAX, longest_pod_name
from workflows.cron import schedule_problem, timezone_problem
from workflows.naming import (
    image_reference_problem,
    is_dns_label,
    label_value_problem,
    object_name_problem,
    qualified_name_problem,
    secret_key_problem,
)

DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
# Bounds a real run stays far inside; beyond them a value is a typo (or 1e30) that would only
# fail later, on the cluster, or overflow the int64 fields of Kubernetes objects.
MAX_DURATION_S = 366 * 24 * 3600
MAX_GPU_MEMORY_GIB = 1024
MAX_QUESTIONS = 1_000_000
MAX_TOKENS = 10_000_000
MAX_ROWS = 10_000_000_000
MAX_PARALLEL = 10_000
MAX_UID = 2**31 - 1
FREE_TEXT_FIELDS = frozenset({"description", "overrides"})  # prose, and Axolotl's own keys (chat templates...)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SHOWN_VALUE = 60  # characters of a bad value quoted back in an error
MAX_PROBLEM_LINE = 400


def _shown(value: Any) -> str:
    """A bad value as quoted back in a message: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE else f"{text[:SHOWN_VALUE - 5]}...({len(text)} characters)"


class ConfigError(Exception):
    """A pipeline config a user must fix; the message lists each problem with its field path."""


def _hidden_character(value: Any) -> str | None:
    """The first control or bidi-override character in a value (its strings, keys and items), or None."""
    if isinstance(value, str):
        return next((char for char in value if unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS), None)
    if isinstance(value, dict):
        return next(filter(None, (_hidden_character(part) for item in value.items() for part in item)), None)
    if isinstance(value, (list, tuple)):
        return next(filter(None, map(_hidden_character, value)), None)
    return None


class Strict(BaseModel):
    # allow_inf_nan: `.inf` and `.nan` are YAML floats, and no setting here means either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _printable(cls, value: Any, info: ValidationInfo) -> Any:
        """Names, ids, paths and labels end up in argv, manifests and logs: a newline or escape has no place there."""
        if info.field_name in FREE_TEXT_FIELDS:
            return value
        hidden = _hidden_character(value)
        if hidden is not None:
            raise ValueError(f"contains the control character {hidden!r}; only {', '.join(sorted(FREE_TEXT_FIELDS))} "
                             "may hold free text")
        return value


def _seconds(value: int | str) -> int:
    """Durations as `90`, `"45m"`, `"6h"` or `"1d12h"`, in seconds."""
    if isinstance(value, int):
        seconds = value
    else:
        match = DURATION.fullmatch(value.strip())
        if not value.strip() or not match:
            raise ValueError(f"{_shown(value)} is not a duration; use seconds or e.g. '45m', '6h', '1d12h'")
        days, hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration may be at most 366d ({MAX_DURATION_S} seconds)")
    return seconds


def _refusing(problem_of: Callable[[str], str | None]) -> Callable[[str], str]:
    """A validator from a `problem_of(value) -> why it is wrong, or None` check."""
    def validate(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value
    return validate


def _refusing_unless_none(problem_of: Callable[[str], str | None]) -> Callable[[str | None], str | None]:
    """`_refusing` for an optional field: None stays None."""
    check = _refusing(problem_of)
    return lambda value: None if value is None else check(value)


Duration = Annotated[int, Field(description="seconds, or a duration like '45m', '6h'")]


def _quantity(value: str | int) -> str:
    text = str(value)
    if not QUANTITY.fullmatch(text):
        raise ValueError(f"{_shown(value)} is not a Kubernetes quantity; use e.g. '8', '500m', '64Gi'")
    return text


class ModelSpec(Strict):
    id: str = Field(description="hub id (org/name) or a local directory of the base model")
    revision: str = Field("main", description="hub revision: branch, tag or commit; pin a commit for reproducible runs")


class FieldMapping(Strict):
    question: str = Field("problem", description="source column that becomes `question`")
    answer: str = Field("answer", description="source column that becomes `answer`")


class DataSpec(Strict):
    source: str = Field(description="hub dataset id, or a local parquet/jsonl/csv path")
    revision: str = "main"
    split: str = "train"
    fields: FieldMapping = FieldMapping()
    max_rows: int | None = Field(None, gt=0, le=MAX_ROWS)
    shuffle_seed: int | None = Field(None, ge=0, le=2**32 - 1)
    holdout_fraction: float = Field(0.0, ge=0.0, lt=1.0)


class Toleration(Strict):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    _key = field_validator("key")(_refusing_unless_none(qualified_name_problem))
    _value = field_validator("value")(_refusing_unless_none(label_value_problem))

    @model_validator(mode="after")
    def _exists_takes_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists matches any value; remove value (or use Equal)")
        return self


class PodPlacement(Strict):
    """Where GPU pods may land: node labels that must match, and taints they tolerate."""

    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    # GPU feature discovery's labels; a minimum, since cards of one class report different sizes.
    min_gpu_memory_mib: int | None = Field(
        None, gt=0, le=MAX_GPU_MEMORY_GIB * 1024,
        description="nodes whose `nvidia.com/gpu.memory` label is at least this (node affinity)")
    gpu_products: list[str] = Field(
        [], description="nodes whose `nvidia.com/gpu.product` label is one of these (node affinity)")

    @field_validator("gpu_products")
    @classmethod
    def _label_values(cls, products: list[str]) -> list[str]:
        for product in products:
            if not product or label_value_problem(product):
                raise ValueError(f"{_shown(product)} is not a node label value (at most 63 letters, digits, '-', '_', "
                                 "'.'; e.g. NVIDIA-L40S, as `nvidia.com/gpu.product` shows it)")
        return products

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            problem = qualified_name_problem(key) or label_value_problem(value)
            if problem:
                raise ValueError(f"node label {_shown(key)}: {problem}")
        return labels


class TrainSpec(PodPlacement):
    axolotl_config: str = Field(description="path of the Axolotl YAML, relative to the project root")
    overrides: dict[str, Any] = Field({}, description="top-level Axolotl keys set over the YAML")
    gpus: int = Field(1, ge=1, le=16, description="GPUs per node (training processes per pod)")
    nodes: int = Field(1, ge=1, le=64, description="nodes training together; more than 1 runs a JobSet (docs/multi-node.md)")
    max_restarts: int = Field(2, ge=0, le=20, description="multi-node: JobSet restarts of the whole group after a failure")
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "8"
    memory: str = "64Gi"
    shm_size: str = "16Gi"
    timeout: Duration = _seconds("12h")
    priority_class_name: str | None = Field(
        None, description="PriorityClass of the training pod, so it gets its GPUs before eval pods queued beside it")
    priority_class_value: int = Field(
        1000, ge=0, le=1_000_000_000, description="its value, when `tunebench render --kind prerequisites` creates it")

    _resource = field_validator("gpu_resource")(_refusing(qualified_name_problem))
    _priority_class = field_validator("priority_class_name")(_refusing_unless_none(object_name_problem))
    _quantities = field_validator("cpu", "memory", "shm_size", mode="before")(_quantity)
    _duration = field_validator("timeout", mode="before")(_seconds)

    @property
    def world_size(self) -> int:
        """GPUs of the whole training (processes on a CPU): what the memory gate shards over."""
        return self.nodes * self.gpus

    @field_validator("axolotl_config")
    @classmethod
    def _yaml_path(cls, value: str) -> str:
        if not value.endswith((".yaml", ".yml")):
            raise ValueError(f"{_shown(value)} is not a YAML file path (.yaml or .yml)")
        return value


class GateSpec(Strict):
    gpu_memory_gib: float = Field(80.0, gt=0, le=MAX_GPU_MEMORY_GIB)
    sharding: Literal["auto", "none", "fsdp", "zero3"] = "auto"
    mode: Literal["fail", "warn"] = "fail"


class EvalSpec(PodPlacement):
    dataset: str = "TIGER-Lab/MMLU-Pro"
    revision: str = "main"
    subjects: list[str] = list(SUBJECTS)
    baselines: list[str] = []
    engine: Literal["vllm", "hf"] = "vllm"
    extract: Literal["tiger", "strict"] = "tiger"
    gpus_per_task: int = Field(1, ge=0, le=16)
    max_new_tokens: int = Field(2048, gt=0, le=MAX_TOKENS)
    max_model_len: int = Field(4096, gt=0, le=MAX_TOKENS)
    limit: int | None = Field(None, gt=0, le=MAX_QUESTIONS, description="questions per subject, for smoke runs")
    batch_size: int = Field(8, gt=0, le=MAX_PARALLEL, description="hf engine batch size")
    parallelism: int | None = Field(None, gt=0, le=MAX_PARALLEL,
                                    description="eval tasks of one fan-out running at once")
    cpu: str = "4"
    memory: str = "32Gi"
    shm_size: str = "8Gi"
    timeout: Duration = _seconds("6h")
    regression_threshold: float = Field(0.02, ge=0.0, le=1.0)
    regression_requires_significance: bool = Field(
        True, description="a drop beyond the threshold is a regression only when significant too (p < 0.05)")

    _quantities = field_validator("cpu", "memory", "shm_size", mode="before")(_quantity)
    _duration = field_validator("timeout", mode="before")(_seconds)

    @field_validator("subjects")
    @classmethod
    def _known_subjects(cls, subjects: list[str]) -> list[str]:
        unknown = [s for s in subjects if s not in SUBJECTS]
        if unknown:
            raise ValueError(f"unknown subject(s) {unknown}; valid: {', '.join(SUBJECTS)}")
        if not subjects:
            raise ValueError("at least one subject is needed")
        if len(set(subjects)) != len(subjects):
            raise ValueError("subjects repeat")
        return subjects


class UploadSpec(Strict):
    enabled: bool = True
    repo_id: str = Field(description="hub repo for the merged model, org/name")
    private: bool = True
    target: Literal["hub", "local"] = Field("hub", description="`local` writes the same files to RUN/upload")

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        if not REPO_ID.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a hub repo id; use org/name")
        return value


class ClaimTemplate(Strict):
    size: str = "200Gi"
    storage_class: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = "ReadWriteMany"

    _storage_class = field_validator("storage_class")(_refusing_unless_none(object_name_problem))

    _quantity = field_validator("size", mode="before")(_quantity)


class VolumeSpec(Strict):
    """Exactly one of: an existing PersistentVolumeClaim, or a claim made per run."""

    existing_claim: str | None = None
    claim_template: ClaimTemplate | None = None
    create_as: ClaimTemplate = Field(
        ClaimTemplate(), description="size, class and access mode `--kind prerequisites` gives an existing_claim")

    _claim = field_validator("existing_claim")(_refusing_unless_none(object_name_problem))

    @model_validator(mode="after")
    def _exactly_one(self) -> VolumeSpec:
        if (self.existing_claim is None) == (self.claim_template is None):
            raise ValueError("set exactly one of existing_claim or claim_template")
        return self


class SecretRef(Strict):
    name: str = "hf-token"
    key: str = "token"

    _name = field_validator("name")(_refusing(object_name_problem))
    _key = field_validator("key")(_refusing(secret_key_problem))


class Images(Strict):
    light: str = "ghcr.io/tunebench/tunebench:0.1.0"
    train: str = "ghcr.io/tunebench/tunebench-train:0.1.0"
    eval: str = "ghcr.io/tunebench/tunebench-eval:0.1.0"

    _references = field_validator("light", "train", "eval")(_refusing(image_reference_problem))


class ClusterSpec(PodPlacement):
    namespace: str = "argo"
    service_account: str = "tunebench"
    images: Images = Images()
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    workspace: VolumeSpec = VolumeSpec(claim_template=ClaimTemplate())
    hf_cache: VolumeSpec | None = Field(None, description="omit to keep the HF cache on the workspace volume")
    hf_token_secret: SecretRef = SecretRef()
    pod_gc: Literal["OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess"] = "OnPodSuccess"
    ttl_after_finished: Duration = _seconds("7d")
    parallelism: int | None = Field(None, gt=0, le=MAX_PARALLEL)
    run_as_user: int | None = Field(1000, ge=0, le=MAX_UID,
                                    description="UID of the step containers; null keeps the image's user")
    active_deadline: Duration = Field(
        _seconds("2d"), description="the whole run's deadline: a pod that never schedules does not hold it for ever")

    _duration = field_validator("ttl_after_finished", "active_deadline", mode="before")(_seconds)

    @field_validator("namespace", "service_account")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(f"{_shown(value)} is not a DNS-1123 label (lowercase letters, digits, '-'; at most 63)")
        return value


class ScheduleSpec(Strict):
    crons: list[str] = Field(description="cron expressions, e.g. '0 3 * * 1'")
    timezone: str = "UTC"
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Forbid"
    include_finetuned: bool = Field(True, description="re-benchmark the uploaded hub repo beside the baselines")

    @field_validator("crons")
    @classmethod
    def _cron_schedules(cls, crons: list[str]) -> list[str]:
        if not crons:
            raise ValueError("at least one cron expression is needed")
        for cron in crons:
            _refusing(schedule_problem)(cron)
        return crons

    _timezone = field_validator("timezone")(_refusing(timezone_problem))


class PipelineConfig(Strict):
    name: str = Field(description="DNS-1123 name; prefixes every Argo object")
    description: str = ""
    model: ModelSpec
    data: DataSpec
    train: TrainSpec
    gate: GateSpec = GateSpec()
    eval: EvalSpec = EvalSpec()
    upload: UploadSpec
    cluster: ClusterSpec = ClusterSpec()
    schedule: ScheduleSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_dns_label(value) or len(value) > 40:
            raise ValueError(f"{_shown(value)} must be a DNS-1123 label of at most 40 characters")
        return value

    @model_validator(mode="after")
    def _nodes_need_a_shared_volume(self) -> PipelineConfig:
        workspace = self.cluster.workspace
        # An existing claim's mode is what `--kind prerequisites` creates it with (create_as).
        field, claim = (("claim_template", workspace.claim_template) if workspace.claim_template is not None
                        else ("create_as", workspace.create_as))
        if self.train.nodes > 1 and claim.access_mode != "ReadWriteMany":
            raise ValueError(
                f"train.nodes {self.train.nodes} needs cluster.workspace.{field}.access_mode ReadWriteMany "
                f"(got {claim.access_mode}): every node reads and writes the same checkpoints")
        return self

    @model_validator(mode="after")
    def _nodes_need_a_name_jobset_accepts(self) -> PipelineConfig:
        # The run is `<name>-xxxxx` (generateName); JobSet's webhook refuses a JobSet whose pod names would pass
        # a DNS-1035 label (63 characters, starting with a letter), and the run would fail at its train step.
        nodes = self.train.nodes
        if nodes > 1:
            longest = POD_NAME_MAX - longest_pod_name(1 + GENERATED_SUFFIX, nodes)  # the pod name grows with the name
            if len(self.name) > longest:
                raise ValueError(
                    f"name {_shown(self.name)} ({len(self.name)} characters) is too long for train.nodes {nodes}: "
                    f"its JobSet's pod names would pass {POD_NAME_MAX} characters; use at most {longest}")
            if not self.name[0].isalpha():
                raise ValueError(f"name {_shown(self.name)} must start with a letter for train.nodes {nodes}: "
                                 "JobSet names its pods and headless Service after the run (DNS-1035)")
        return self

    @model_validator(mode="after")
    def _history_needs_a_lasting_volume(self) -> PipelineConfig:
        if self.schedule is not None and self.cluster.workspace.existing_claim is None:
            raise ValueError(
                "schedule needs cluster.workspace.existing_claim: re-benchmark history lives on the "
                "workspace volume, and a claim_template volume is new for every run"
            )
        return self

    @model_validator(mode="after")
    def _gate_fits_the_smallest_gpu_placed(self) -> PipelineConfig:
        smallest = self.train.min_gpu_memory_mib or self.cluster.min_gpu_memory_mib
        if smallest is not None and self.gate.gpu_memory_gib * 1024 > smallest:
            raise ValueError(
                f"gate.gpu_memory_gib {self.gate.gpu_memory_gib:g} is more than the smallest GPU the training "
                f"placement admits (min_gpu_memory_mib {smallest} = {smallest / 1024:.1f} GiB): the gate would pass "
                f"a run that does not fit there; set gate.gpu_memory_gib to at most {smallest / 1024:.1f}"
            )
        return self


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the config section at `loc`, for 'did you mean' help on unknown keys."""
    model: Any = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if info is None:
            return []
        annotation = info.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields)




def _problem(item: Any) -> str:
    """One validation problem as one line: `eval.limit: ... (got 1e+30)`."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]).lstrip(".")
    path = path or "(top level)"
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        valid = _fields_at(item["loc"][:-1])
        message = "unknown field" + (f"; valid here: {', '.join(valid)}" if valid else "")
    elif item["type"] == "missing":
        message = "required field is missing"
    value = item.get("input")
    hidden = (item["type"] == "missing" or isinstance(value, dict) or repr(value) in message
              or _shown(value) in message)
    shown = "" if hidden else f" (got {_shown(value)})"
    line = printable(f"{path}: {message}{shown}")
    return line if len(line) <= MAX_PROBLEM_LINE else line[:MAX_PROBLEM_LINE - 3] + "..."


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line for one problem; a header and one indented line per problem when there are more."""
    problems = [_problem(item) for item in error.errors()]
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return "\n".join([f"{source}: {len(problems)} problem(s)", *(f"  {problem}" for problem in problems)])


def parse_pipeline(data: Any, source: str = "pipeline config") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def read_config_documents(path: str | Path) -> list[Any]:
    """The YAML documents of a config file, read within steps.safe_yaml's bounds (ConfigError otherwise)."""
    try:
        return read_yaml(path, all_documents=True, kind="the pipeline config")
    except YamlInputError as error:
        raise ConfigError(str(error)) from None


def load_pipeline(path: str | Path) -> PipelineConfig:
    documents = [document for document in read_config_documents(path) if document is not None]
    if len(documents) > 1:
        raise ConfigError(f"{path}: holds {len(documents)} YAML documents; a pipeline config is one")
    return parse_pipeline(documents[0] if documents else None, str(path))
