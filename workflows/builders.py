"""Hera builders: the fine-tune → benchmark Workflow, its WorkflowTemplates and the re-benchmark CronWorkflow.

```
convert-dataset ──────┐
memory-gate ──────────┤
prefetch-base-model ──┴─► train ─► merge-lora ─┬─► upload ───────────────────────────────┐
                                               └─► eval-finetuned (withParam) ─┐         │
plan-eval, prefetch-eval ─► eval-baseline (withParam; while training runs) ────┴─► aggregate ─┴─► publish-scores ─► verdict
```
The prefetch tasks download each model once into the shared HF cache; the eval pods then
read it offline. merge-lora's memory comes from prefetch-base-model (the model's size).
aggregate records a regression in the summary and succeeds, so that publish-scores puts the
new scores on the card; `verdict` then fails the run on it (see steps/verdict.py).
"""
from __future__ import annotations

from hera.workflows import (DAG, Container, Counter, CronWorkflow, Gauge, Label, Parameter, Task, Workflow,
                            WorkflowTemplate)
from hera.workflows.models import PodGC, PodSecurityContext, TTLStrategy, VolumeClaimGC, WorkflowMetadata, WorkflowTemplateRef

from steps import contract
from steps.mmlu_pro import node_outputs
from workflows.config import PipelineConfig
from workflows.jobset import EXIT_HANDLER, JobSetTraining, exit_handler, train_jobset
from workflows.params import WorkflowParam, benchmark_params, by_name, pipeline_params
from workflows.templates import (
    INFRASTRUCTURE_RETRY,
    NETWORK_RETRY,
    RUN,
    StepTemplate,
    input_ref,
    workflow_volumes,
)

PIPELINE_ENTRYPOINT = "pipeline"
BENCHMARK_ENTRYPOINT = "benchmark"
DATA_DIR = RUN.data
TRAIN_DIR = RUN.train
FINAL_AXOLOTL_CONFIG = RUN.final_axolotl_config
MERGED_MODEL_DIR = RUN.merged_model
EVAL_DIR = RUN.eval
PLAN_DIR = RUN.plan
LOCAL_UPLOAD_DIR = RUN.upload
SUMMARY_DIR = RUN.summary
SUMMARY_FILE = RUN.summary_json
SUMMARY_ID_FILE = RUN.summary_id
SUMMARY_ID_OUTPUT = "summary-id"


def _flag_args(**flags: object) -> list[str]:
    """`--max-rows 10` style argv pairs for the optional settings that are set."""
    args: list[str] = []
    for name, value in flags.items():
        if value is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    return args


# --- the step templates -------------------------------------------------------------------

def convert_dataset(cfg: PipelineConfig) -> Container:
    data = cfg.data
    return StepTemplate(
        name="convert-dataset", module="convert_dataset", image=cfg.cluster.images.light,
        inputs=("source", "revision", "split", "question_field", "answer_field"),
        args=(
            "--source", input_ref("source"), "--revision", input_ref("revision"),
            "--split", input_ref("split"), "--question-field", input_ref("question_field"),
            "--answer-field", input_ref("answer_field"), "--out-dir", DATA_DIR,
            *_flag_args(max_rows=data.max_rows, shuffle_seed=data.shuffle_seed,
                        holdout_fraction=data.holdout_fraction or None),
        ),
        cpu="2", memory="8Gi", retry=NETWORK_RETRY, timeout_seconds=2 * 3600,
    ).container(cfg)


def memory_gate(cfg: PipelineConfig) -> Container:
    return StepTemplate(
        name="memory-gate", module="estimate_memory", image=cfg.cluster.images.light,
        inputs=("model", "revision", "axolotl_config", "overrides", "gpus", "gpu_memory_gib", "mode"),
        args=(
            "--model", input_ref("model"), "--revision", input_ref("revision"),
            "--axolotl-config", input_ref("axolotl_config"), "--overrides", input_ref("overrides"),
            "--gpus", input_ref("gpus"), "--gpu-memory-gib", input_ref("gpu_memory_gib"),
            "--sharding", cfg.gate.sharding, "--mode", input_ref("mode"),
            "--out", RUN.estimate,
        ),
        cpu="1", memory="2Gi", retry=NETWORK_RETRY, timeout_seconds=600,
    ).container(cfg)


def train(cfg: PipelineConfig) -> Container:
    return train_step(cfg).container(cfg)


def train_step(cfg: PipelineConfig) -> StepTemplate:
    spec = cfg.train
    # The configured count is the literal; `-p gpus=N` reaches the pod through podSpecPatch.
    return StepTemplate(
        name="train", module="train", image=cfg.cluster.images.train,
        inputs=("base_model", "base_model_revision", "axolotl_config", "overrides", "gpus"),
        args=(
            "--config", input_ref("axolotl_config"), "--overrides", input_ref("overrides"),
            "--base-model", input_ref("base_model"), "--base-model-revision", input_ref("base_model_revision"),
            "--dataset", RUN.train_parquet, "--run-dir", TRAIN_DIR, "--gpus", input_ref("gpus"),
        ),
        gpus=spec.gpus, patched_resources={spec.gpu_resource: "gpus"},
        shm_size=spec.shm_size, placement=spec, priority_class=spec.priority_class_name,
        cpu=spec.cpu, memory=spec.memory, retry=INFRASTRUCTURE_RETRY, timeout_seconds=spec.timeout,
    )


def merge_lora(cfg: PipelineConfig) -> Container:
    # Merging runs on the CPU: host memory for the model, not GPUs, so no GPU node placement.
    # Its memory comes from the base model's size (prefetch-base-model), through podSpecPatch.
    return StepTemplate(
        name="merge-lora", module="merge_lora", image=cfg.cluster.images.train,
        inputs=("memory",), args=("--config", FINAL_AXOLOTL_CONFIG), patched_resources={"memory": "memory"},
        cpu=MERGE_CPU, retry=INFRASTRUCTURE_RETRY, timeout_seconds=3 * 3600,
    ).container(cfg)


PREFETCH_RECORD_DIR = RUN.prefetch
MERGE_MEMORY_FILE = f"{PREFETCH_RECORD_DIR}/merge-memory"
MERGE_CPU = "4"


def prefetch_base_model(cfg: PipelineConfig) -> Container:
    """The base model into the HF cache before training, and the merge pod's memory from its size."""
    return StepTemplate(
        name="prefetch-base-model", module="prefetch_model", image=cfg.cluster.images.light,
        inputs=("model", "revision"),
        args=("--model", input_ref("model"), "--revision", input_ref("revision"),
              "--merge-memory-out", MERGE_MEMORY_FILE, "--out", f"{PREFETCH_RECORD_DIR}/base-model.json"),
        outputs={"merge-memory": MERGE_MEMORY_FILE},
        cpu="2", memory="4Gi", retry=NETWORK_RETRY, timeout_seconds=3 * 3600,
    ).container(cfg)


def prefetch_eval(cfg: PipelineConfig) -> Container:
    """Every evaluated hub model and the eval dataset, once, before the eval pods load them offline."""
    return StepTemplate(
        name="prefetch-eval", module="prefetch_model", image=cfg.cluster.images.light,
        inputs=("models", "model", "dataset", "dataset_revision"),
        args=("--models", input_ref("models"), "--model", input_ref("model"),
              "--dataset", input_ref("dataset"), "--dataset-revision", input_ref("dataset_revision"),
              "--out", f"{PREFETCH_RECORD_DIR}/eval.json"),
        cpu="2", memory="8Gi", retry=NETWORK_RETRY, timeout_seconds=6 * 3600,
    ).container(cfg)


def _publish_args(cfg: PipelineConfig) -> tuple[str, ...]:
    """What the upload and the later card update both say about the model."""
    return (
        "--model-dir", MERGED_MODEL_DIR, "--repo-id", input_ref("repo_id"),
        "--target", "hub" if cfg.upload.target == "hub" else LOCAL_UPLOAD_DIR,
        "--axolotl-config", FINAL_AXOLOTL_CONFIG, "--base-model", input_ref("base_model"),
        "--dataset", input_ref("dataset"), "--dataset-revision", input_ref("dataset_revision"),
    )


PUBLISH_INPUTS = ("repo_id", "base_model", "dataset", "dataset_revision")


def upload(cfg: PipelineConfig) -> Container:
    return StepTemplate(
        name="upload", module="upload", image=cfg.cluster.images.light,
        inputs=(*PUBLISH_INPUTS, "private"), args=(*_publish_args(cfg), "--private", input_ref("private")),
        cpu="2", memory="8Gi", retry=NETWORK_RETRY, timeout_seconds=3 * 3600,
        hub_token_required=cfg.upload.target == "hub",
    ).container(cfg)


def publish_scores(cfg: PipelineConfig) -> Container:
    """The model card again, now with the run's MMLU-Pro table (the upload ran before the scores existed);
    only the summary.json this run's aggregate wrote (its summary id) is published."""
    return StepTemplate(
        name="publish-scores", module="upload", image=cfg.cluster.images.light,
        inputs=(*PUBLISH_INPUTS, "summary_id"),
        args=("--card-only", *_publish_args(cfg), "--summary", SUMMARY_FILE, "--summary-id", input_ref("summary_id")),
        cpu="500m", memory="1Gi", retry=NETWORK_RETRY, timeout_seconds=1800,
        hub_token_required=cfg.upload.target == "hub",
    ).container(cfg)


def plan_eval(cfg: PipelineConfig) -> Container:
    return StepTemplate(
        name="plan-eval", module="plan_eval", image=cfg.cluster.images.light,
        inputs=("baselines", "subjects", "finetuned_model", "finetuned_label"),
        args=(
            "--baselines", input_ref("baselines"), "--subjects", input_ref("subjects"),
            "--finetuned-model", input_ref("finetuned_model"), "--finetuned-label", input_ref("finetuned_label"),
            "--out-dir", PLAN_DIR,
        ),
        outputs={
            contract.BASELINE_ITEMS: RUN.plan_file(contract.BASELINE_ITEMS),
            contract.FINETUNED_ITEMS: RUN.plan_file(contract.FINETUNED_ITEMS),
        },
        cpu="500m", memory="512Mi", hub_token=False, timeout_seconds=300,
    ).container(cfg)


def _output(name: str) -> str:
    return "{{outputs.parameters." + name + "}}"


def eval_metrics() -> list[Gauge]:
    """The accuracy of each model × subject as a Prometheus gauge, emitted when its eval task succeeds
    (Argo's custom metrics are per template node, and each eval node is one model × subject)."""
    return [Gauge(
        name="tunebench_mmlu_pro_accuracy",
        help="MMLU-Pro accuracy of one model on one subject, from the latest eval task",
        labels=[Label(key="model", value=input_ref("label")), Label(key="role", value=input_ref("role")),
                Label(key="subject", value=input_ref("subject")),
                Label(key="revision", value=_output(node_outputs.EVAL_MODEL_REVISION)),
                Label(key="settings_hash", value=_output(node_outputs.EVAL_SETTINGS_HASH)),
                Label(key="questions", value=_output(node_outputs.EVAL_QUESTIONS))],
        when="{{status}} == Succeeded",
        realtime=False, value=_output(node_outputs.EVAL_ACCURACY),
    )]


# prefetch-eval filled the cache: no pod of the fan-out downloads (or locks) anything there.
EVAL_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


def eval_mmlu_pro(cfg: PipelineConfig) -> Container:
    ev = cfg.eval
    outputs_dir = node_outputs.eval_outputs_dir(f"{EVAL_DIR}/{input_ref('slug')}", input_ref("subject"))
    template = StepTemplate(
        name="eval-mmlu-pro", module="eval_mmlu_pro", image=cfg.cluster.images.eval,
        inputs=("model", "role", "label", "slug", "subject", "engine", "limit", "dataset", "dataset_revision"),
        args=(
            "--model", input_ref("model"), "--role", input_ref("role"), "--label", input_ref("label"),
            "--subject", input_ref("subject"), "--dataset", input_ref("dataset"),
            "--dataset-revision", input_ref("dataset_revision"), "--engine", input_ref("engine"),
            "--out-dir", f"{EVAL_DIR}/{input_ref('slug')}", "--limit", input_ref("limit"),
            "--extract", ev.extract, "--max-new-tokens", str(ev.max_new_tokens),
            "--max-model-len", str(ev.max_model_len), "--batch-size", str(ev.batch_size),
            "--tensor-parallel", str(max(ev.gpus_per_task, 1)),
        ),
        outputs={name: f"{outputs_dir}/{name}" for name in node_outputs.EVAL_OUTPUTS},
        gpus=ev.gpus_per_task, shm_size=ev.shm_size, placement=ev, cpu=ev.cpu, memory=ev.memory,
        retry=NETWORK_RETRY, timeout_seconds=ev.timeout, env=EVAL_ENV,
    ).container(cfg)
    template.metrics = eval_metrics()
    return template


def aggregate_metrics(cfg: PipelineConfig) -> list[Counter]:
    """Counts the regressions aggregate found (it writes them even when it exits 4; Argo reads
    output parameters of a failed container too). Emitted on every run, 0 included: a counter
    series born with its first regression has no earlier sample, and Prometheus' increase() reads
    that regression as no change, so an alert on it would stay silent."""
    return [Counter(
        name="tunebench_mmlu_pro_regressions",
        help="Subjects whose MMLU-Pro accuracy regressed against the previous run of the same model revision",
        labels=[Label(key="pipeline", value=cfg.name)],
        value=_output(node_outputs.REGRESSIONS),
    )]


def aggregate(cfg: PipelineConfig) -> Container:
    outputs_dir = node_outputs.aggregate_outputs_dir(SUMMARY_DIR)
    template = StepTemplate(
        name="aggregate", module="aggregate", image=cfg.cluster.images.light,
        inputs=("subjects", "regression_threshold"),
        args=(
            "--eval-dir", EVAL_DIR, "--models", RUN.plan_file(contract.PLANNED_MODELS), "--subjects", input_ref("subjects"),
            "--out-dir", SUMMARY_DIR, "--run-id", "{{workflow.name}}",
            "--history", contract.HISTORY_DIR, "--regression-threshold", input_ref("regression_threshold"),
            "--require-significance" if cfg.eval.regression_requires_significance else "--no-require-significance",
            "--on-regression", "record",
        ),
        outputs={SUMMARY_ID_OUTPUT: SUMMARY_ID_FILE,
                 **{name: f"{outputs_dir}/{name}" for name in node_outputs.AGGREGATE_OUTPUTS}},
        cpu="1", memory="2Gi", hub_token=False, timeout_seconds=900,
    ).container(cfg)
    template.metrics = aggregate_metrics(cfg)
    return template


def verdict(cfg: PipelineConfig) -> Container:
    """Fails the run when aggregate recorded a regression, once the scores are published."""
    return StepTemplate(
        name="verdict", module="verdict", image=cfg.cluster.images.light, inputs=("summary_id",),
        args=("--summary", SUMMARY_FILE, "--summary-id", input_ref("summary_id")),
        cpu="100m", memory="256Mi", hub_token=False, timeout_seconds=300,
    ).container(cfg)


# --- the DAGs ---------------------------------------------------------------------------------

EVAL_FANOUT = "eval-fanout"
FANOUT_INPUTS = ("items", "engine", "limit", "dataset", "dataset_revision")


def eval_fanout(eval_template: Container, parallelism: int | None) -> DAG:
    """One eval task per item of a plan list (model × subject), from one `withParam`.

    Its own DAG template, so `eval.parallelism` bounds the eval pods of one fan-out and
    nothing else (training is never held back by it).
    """
    with DAG(name=EVAL_FANOUT, parallelism=parallelism,
             inputs=[Parameter(name=name) for name in FANOUT_INPUTS]) as fanout:
        eval_template(
            name="eval",
            with_param=input_ref("items"),
            arguments={
                "model": "{{item.model}}", "role": "{{item.role}}", "label": "{{item.label}}",
                "slug": "{{item.slug}}", "subject": "{{item.subject}}",
                **{name: input_ref(name) for name in FANOUT_INPUTS if name != "items"},
            },
        )
    return fanout


def _eval_fanout(fanout: DAG, name: str, items_from: Task, items_output: str,
                 params: dict[str, WorkflowParam], depends: str) -> Task:
    return fanout(
        name=name,
        depends=depends,
        arguments={
            "items": f"{{{{tasks.{items_from.name}.outputs.parameters.{items_output}}}}}",
            "engine": params["eval_engine"].ref, "limit": params["eval_limit"].ref,
            "dataset": params["eval_dataset"].ref, "dataset_revision": params["eval_dataset_revision"].ref,
        },
    )


def _prefetch_eval_task(template: Container, params: dict[str, WorkflowParam], finetuned_model: str) -> Task:
    """The baselines (and a fine-tuned model on the hub, for re-benchmarks) and the dataset, once."""
    return template(name="prefetch-eval", arguments={
        "models": params["baselines"].ref, "model": finetuned_model,
        "dataset": params["eval_dataset"].ref, "dataset_revision": params["eval_dataset_revision"].ref})


def _aggregate_task(template: Container, params: dict[str, WorkflowParam], depends: str) -> Task:
    return template(
        name="aggregate", depends=depends,
        arguments={"subjects": params["subjects"].ref, "regression_threshold": params["regression_threshold"].ref},
    )


def _train_jobset(cfg: PipelineConfig) -> JobSetTraining | None:
    """Across nodes, the JobSet that replaces the train pod. Built outside the Workflow's context: the
    train container it is made from must not become a template of its own."""
    if cfg.train.nodes == 1:
        return None
    security = _pod_security(cfg)
    return train_jobset(cfg, train_step(cfg), security.model_dump(by_alias=True, exclude_none=True) if security else None)


def _summary_id(scored: Task) -> str:
    return f"{{{{tasks.{scored.name}.outputs.parameters.{SUMMARY_ID_OUTPUT}}}}}"


def _verdict_task(template: Container, scored: Task, depends: str) -> Task:
    """The last task: fails the run on a regression aggregate recorded (a failed aggregate omits it,
    and the run fails with aggregate)."""
    return template(name="verdict", depends=depends, arguments={"summary_id": _summary_id(scored)})


def _pipeline_dag(cfg: PipelineConfig, params: dict[str, WorkflowParam], jobset: JobSetTraining | None) -> None:
    p = {name: param.ref for name, param in params.items()}
    multi_node = jobset is not None
    if multi_node:
        exit_handler()
    templates = {
        "convert": convert_dataset(cfg), "gate": memory_gate(cfg), **({"train": train(cfg)} if jobset is None else {}),
        "merge": merge_lora(cfg), "upload": upload(cfg), "plan": plan_eval(cfg),
        "aggregate": aggregate(cfg), "publish": publish_scores(cfg), "verdict": verdict(cfg),
        "prefetch_base": prefetch_base_model(cfg), "prefetch_eval": prefetch_eval(cfg),
    }
    fanout = eval_fanout(eval_mmlu_pro(cfg), cfg.eval.parallelism)
    with DAG(name=PIPELINE_ENTRYPOINT):
        convert = templates["convert"](name="convert-dataset", arguments={
            "source": p["dataset"], "revision": p["dataset_revision"], "split": p["dataset_split"],
            "question_field": p["question_field"], "answer_field": p["answer_field"]})
        gate = templates["gate"](name="memory-gate", arguments={
            "model": p["base_model"], "revision": p["base_model_revision"],
            "axolotl_config": p["axolotl_config"], "overrides": p["axolotl_overrides"],
            "gpus": str(cfg.train.world_size) if multi_node else p["gpus"],
            "gpu_memory_gib": p["gpu_memory_gib"], "mode": p["gate_mode"]})
        base_fetched = templates["prefetch_base"](name="prefetch-base-model", arguments={
            "model": p["base_model"], "revision": p["base_model_revision"]})
        train_depends = f"{convert.name} && {gate.name} && {base_fetched.name}"
        train_arguments = {
            "base_model": p["base_model"], "base_model_revision": p["base_model_revision"],
            "axolotl_config": p["axolotl_config"], "overrides": p["axolotl_overrides"], "gpus": p["gpus"]}
        trained = jobset.tasks(train_depends, train_arguments) if jobset is not None else \
            templates["train"](name="train", depends=train_depends, arguments=train_arguments)
        merged = templates["merge"](name="merge-lora", depends=trained.name, arguments={
            "memory": f"{{{{tasks.{base_fetched.name}.outputs.parameters.merge-memory}}}}"})
        published_model = {"repo_id": p["hub_repo"], "base_model": p["base_model"],
                           "dataset": p["dataset"], "dataset_revision": p["dataset_revision"]}
        upload_enabled = f"{p['upload_enabled']} == true"
        uploaded = templates["upload"](name="upload", depends=merged.name, when=upload_enabled,
                                       arguments={**published_model, "private": p["hub_private"]})
        plan = templates["plan"](name="plan-eval", arguments={
            "baselines": p["baselines"], "subjects": p["subjects"],
            "finetuned_model": MERGED_MODEL_DIR, "finetuned_label": p["hub_repo"]})
        fetched = _prefetch_eval_task(templates["prefetch_eval"], params, finetuned_model="")
        baseline = _eval_fanout(fanout, "eval-baseline", plan, contract.BASELINE_ITEMS, params,
                                f"{plan.name} && {fetched.name}")
        finetuned = _eval_fanout(fanout, "eval-finetuned", plan, contract.FINETUNED_ITEMS, params,
                                 f"{merged.name} && {plan.name} && {fetched.name}")
        scored = _aggregate_task(templates["aggregate"], params, f"{baseline.name} && {finetuned.name}")
        # A regression is published too (aggregate records it and succeeds); the verdict comes after.
        published = templates["publish"](name="publish-scores", when=upload_enabled,
                                         arguments={**published_model, "summary_id": _summary_id(scored)},
                                         depends=f"{uploaded.name} && {scored.name}")
        _verdict_task(templates["verdict"], scored, f"{scored.name} && {published.name}")


def _benchmark_dag(cfg: PipelineConfig, params: dict[str, WorkflowParam]) -> None:
    templates = {"plan": plan_eval(cfg), "aggregate": aggregate(cfg), "verdict": verdict(cfg),
                 "prefetch_eval": prefetch_eval(cfg)}
    fanout = eval_fanout(eval_mmlu_pro(cfg), cfg.eval.parallelism)
    with DAG(name=BENCHMARK_ENTRYPOINT):
        plan = templates["plan"](name="plan-eval", arguments={
            "baselines": params["baselines"].ref, "subjects": params["subjects"].ref,
            "finetuned_model": params["finetuned_model"].ref, "finetuned_label": params["finetuned_model"].ref})
        fetched = _prefetch_eval_task(templates["prefetch_eval"], params, params["finetuned_model"].ref)
        ready = f"{plan.name} && {fetched.name}"
        baseline = _eval_fanout(fanout, "eval-baseline", plan, contract.BASELINE_ITEMS, params, ready)
        finetuned = _eval_fanout(fanout, "eval-finetuned", plan, contract.FINETUNED_ITEMS, params, ready)
        scored = _aggregate_task(templates["aggregate"], params, f"{baseline.name} && {finetuned.name}")
        _verdict_task(templates["verdict"], scored, scored.name)


def _has_claim_templates(cfg: PipelineConfig) -> bool:
    volumes = [cfg.cluster.workspace, cfg.cluster.hf_cache]
    return any(volume is not None and volume.claim_template is not None for volume in volumes)


def _pod_security(cfg: PipelineConfig) -> PodSecurityContext | None:
    cluster = cfg.cluster
    if cluster.run_as_user is None:
        return None
    # OnRootMismatch: re-owning a large claim on every pod start takes minutes on block storage.
    return PodSecurityContext(run_as_user=cluster.run_as_user, run_as_group=cluster.run_as_user,
                              fs_group=cluster.run_as_user, fs_group_change_policy="OnRootMismatch",
                              run_as_non_root=True)


def _spec(cfg: PipelineConfig, entrypoint: str, params: list[WorkflowParam]) -> dict:
    cluster = cfg.cluster
    security = _pod_security(cfg)
    return dict(
        namespace=cluster.namespace,
        entrypoint=entrypoint,
        # Multi-node training: a JobSet outlives a stopped or failed workflow unless deleted.
        on_exit=EXIT_HANDLER if entrypoint == PIPELINE_ENTRYPOINT and cfg.train.nodes > 1 else None,
        service_account_name=cluster.service_account,
        arguments=[param.to_hera() for param in params],
        volumes=workflow_volumes(cfg),
        pod_gc=PodGC(strategy=cluster.pod_gc),
        ttl_strategy=TTLStrategy(seconds_after_completion=cluster.ttl_after_finished),
        parallelism=cluster.parallelism,
        active_deadline_seconds=cluster.active_deadline,
        security_context=security,
        # A failed run keeps its per-run claim, so `argo retry` resumes from its checkpoints.
        volume_claim_gc=VolumeClaimGC(strategy="OnWorkflowSuccess") if _has_claim_templates(cfg) else None,
        labels=_labels(cfg),
        # Runs made from the templates (UI submissions, cron) carry the labels too.
        workflow_metadata=WorkflowMetadata(labels=_labels(cfg)),
    )


def _labels(cfg: PipelineConfig) -> dict[str, str]:
    return contract.pipeline_labels(cfg.name)


def _annotations(cfg: PipelineConfig, what: str) -> dict[str, str]:
    text = f"{what}: {cfg.description}" if cfg.description else what
    return {"workflows.argoproj.io/description": text}


def build_workflow(cfg: PipelineConfig) -> Workflow:
    """The whole pipeline as a Workflow to submit; a new name, and so a new run folder, per submission."""
    params = pipeline_params(cfg)
    jobset = _train_jobset(cfg)
    with Workflow(generate_name=f"{cfg.name}-", annotations=_annotations(cfg, "fine-tune and benchmark"),
                  **_spec(cfg, PIPELINE_ENTRYPOINT, params)) as workflow:
        _pipeline_dag(cfg, by_name(params), jobset)
    return workflow


def build_pipeline_template(cfg: PipelineConfig) -> WorkflowTemplate:
    """The same pipeline as a WorkflowTemplate, for resubmission from the Argo UI form."""
    params = pipeline_params(cfg)
    jobset = _train_jobset(cfg)
    with WorkflowTemplate(name=cfg.name, annotations=_annotations(cfg, "fine-tune and benchmark"),
                          **_spec(cfg, PIPELINE_ENTRYPOINT, params)) as template:
        _pipeline_dag(cfg, by_name(params), jobset)
    return template


def benchmark_template_name(cfg: PipelineConfig) -> str:
    return contract.benchmark_template_name(cfg.name)


def build_benchmark_template(cfg: PipelineConfig) -> WorkflowTemplate:
    """Evaluation fan-out + aggregate with history and regression check, without training."""
    params = benchmark_params(cfg)
    with WorkflowTemplate(name=benchmark_template_name(cfg), annotations=_annotations(cfg, "MMLU-Pro re-benchmark"),
                          **_spec(cfg, BENCHMARK_ENTRYPOINT, params)) as template:
        _benchmark_dag(cfg, by_name(params))
    return template


CRON_STARTING_DEADLINE_SECONDS = 3600


def build_cron(cfg: PipelineConfig) -> CronWorkflow:
    """Runs the benchmark template on the configured schedules; history accumulates on the workspace volume."""
    if cfg.schedule is None:
        raise ValueError(f"pipeline '{cfg.name}' has no schedule: add `schedule.crons` to render a CronWorkflow")
    schedule = cfg.schedule
    return CronWorkflow(
        name=contract.rebenchmark_cron_name(cfg.name),
        namespace=cfg.cluster.namespace,
        annotations=_annotations(cfg, "scheduled MMLU-Pro re-benchmark"),
        labels=_labels(cfg),
        schedules=list(schedule.crons),
        timezone=schedule.timezone,
        concurrency_policy=schedule.concurrency_policy,
        # A schedule missed while the controller was down runs late by at most this, never hours later.
        starting_deadline_seconds=CRON_STARTING_DEADLINE_SECONDS,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=3,
        workflow_template_ref=WorkflowTemplateRef(name=benchmark_template_name(cfg)),
    )
