"""Container templates for the steps: image, exec-form command, volumes, env, GPU settings, retries.

Every template runs `python -m steps.<module>` with its arguments as separate argv
elements, so no parameter value ever reaches a shell.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from hera.workflows import (
    Container,
    EmptyDirVolume,
    Env,
    ExistingVolume,
    Parameter,
    ResourceEnv,
    Resources,
    RetryStrategy,
    SecretEnv,
    Volume,
)
from hera.workflows.models import (
    Affinity,
    Backoff,
    NodeAffinity,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    SecurityContext,
    Toleration,
    ValueFrom,
    VolumeMount,
)

from steps.contract import EXIT_FAILURE, HF_CACHE_MOUNT, SHM_MOUNT, WORKSPACE_MOUNT, run_folder
from workflows.config import ClusterSpec, PipelineConfig, PodPlacement, VolumeSpec

# RUN in docs/design.md: each submission (a new workflow name) gets its own run folder.
RUN = run_folder(WORKSPACE_MOUNT, "{{workflow.name}}")

WORKSPACE_VOLUME = "workspace"
HF_CACHE_VOLUME = "hf-cache"
SHM_VOLUME = "dshm"

# A graceful node shutdown or a spot preemption ends the pod with SIGTERM (143), or SIGKILL
# (137) when it outlives the grace period; Argo marks that pod Failed, not Error. A process
# that dies of its peers' SIGTERM may exit 1, but the kubelet's message names the shutdown
# (the message pattern of Argo's retry-conditional example). An OOM-kill is also 137, but
# Argo's message then says OOMKilled: with the same limits it fails again.
PREEMPTED = ("asInt(lastRetry.exitCode) == 143 || "
             "(asInt(lastRetry.exitCode) == 137 && !(lastRetry.message contains 'OOMKilled')) || "
             "lastRetry.message matches 'imminent node shutdown|pod deleted'")
# `backoff.cap` bounds each wait. Never `maxDuration`: Argo counts it from the first attempt's
# start and also cuts a retried pod's deadline to it, so a long step would never be retried.

# Retry what the network breaks (exit 1), a lost pod and a preemption, never a verdict: 2 is
# bad input, 3 a closed memory gate, 4 a score regression; rerunning those changes nothing.
NETWORK_RETRY = RetryStrategy(
    limit=3,
    retry_policy="Always",
    expression=f"lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == {EXIT_FAILURE} || {PREEMPTED}",
    backoff=Backoff(duration="30s", factor=2, cap="5m"),
)
# Long GPU steps: retry only when the pod was lost or preempted; the restarted train step
# resumes from its newest checkpoint. A crash (exit 1) is not retried, so a deterministic bug
# does not burn the GPUs three times.
INFRASTRUCTURE_RETRY = RetryStrategy(
    limit=3,
    retry_policy="Always",
    expression=f"lastRetry.status == 'Error' || {PREEMPTED}",
    backoff=Backoff(duration="1m", factor=2, cap="10m"),
)
# Argo names the container of a container template `main`; podSpecPatch addresses it so.
MAIN_CONTAINER = "main"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# Each step's thread pools follow its CPU limit; the downward API rounds it up to an integer.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def input_ref(name: str) -> str:
    return "{{inputs.parameters." + name + "}}"


@dataclass(frozen=True)
class StepTemplate:
    """What differs between the step containers; `container()` adds what they share."""

    name: str
    module: str
    image: str
    inputs: tuple[str, ...]
    args: tuple[str, ...]
    outputs: dict[str, str] = field(default_factory=dict)  # output parameter -> file path
    gpus: int | None = None
    # Resource quantities a run may change, as {resource: input parameter}: Argo decodes the
    # container's resources before substituting, so they travel through podSpecPatch.
    patched_resources: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    shm_size: str | None = None  # memory-backed /dev/shm of GPU pods
    placement: PodPlacement | None = None
    priority_class: str | None = None
    cpu: str | None = None
    memory: str | None = None
    timeout_seconds: int | None = None
    retry: RetryStrategy | None = None
    hub_token: bool = True  # gated models need it for downloads too
    hub_token_required: bool = False

    def container(self, cfg: PipelineConfig) -> Container:
        cluster = cfg.cluster
        uses_gpu = bool(self.gpus)
        placement_selector, placement_tolerations = _placement(cluster, self.placement)
        return Container(
            name=self.name,
            image=self.image,
            image_pull_policy=cluster.image_pull_policy,
            command=["python", "-m", f"steps.{self.module}"],
            args=list(self.args),
            inputs=[Parameter(name=name) for name in self.inputs] or None,
            outputs=[Parameter(name=name, value_from=ValueFrom(path=path)) for name, path in self.outputs.items()] or None,
            env=_env(cluster, self.hub_token, self.hub_token_required, self.env),
            resources=_resources(cfg, self, uses_gpu),
            pod_spec_patch=_resource_patch(self.patched_resources),
            volumes=[_shm_volume(self.shm_size)] if uses_gpu else None,
            volume_mounts=_mounts(cluster),
            priority_class_name=self.priority_class,
            node_selector=placement_selector or None,
            affinity=_gpu_affinity(cluster, self.placement),
            tolerations=placement_tolerations or None,
            retry_strategy=self.retry,
            active_deadline_seconds=self.timeout_seconds,
            security_context=SecurityContext(allow_privilege_escalation=False, privileged=False),
        )


def _placement(cluster: ClusterSpec, own: PodPlacement | None) -> tuple[dict[str, str], list[Toleration]]:
    selector = dict(cluster.node_selector)
    tolerations = list(cluster.tolerations)
    if own is not None:
        selector.update(own.node_selector)
        tolerations += [t for t in own.tolerations if t not in tolerations]
    return selector, [Toleration(**t.model_dump(exclude_none=True)) for t in tolerations]


def _gpu_affinity(cluster: ClusterSpec, own: PodPlacement | None) -> Affinity | None:
    """Required node affinity for a GPU class: a minimum memory (`Gt` is strict, so min - 1) and/or products.

    The step's own settings win over the cluster-wide ones, field by field."""
    min_memory = (own.min_gpu_memory_mib if own is not None else None) or cluster.min_gpu_memory_mib
    products = (own.gpu_products if own is not None else []) or cluster.gpu_products
    requirements = []
    if min_memory:
        requirements.append(NodeSelectorRequirement(key=GPU_MEMORY_LABEL, operator="Gt", values=[str(min_memory - 1)]))
    if products:
        requirements.append(NodeSelectorRequirement(key=GPU_PRODUCT_LABEL, operator="In", values=list(products)))
    if not requirements:
        return None
    terms = [NodeSelectorTerm(match_expressions=requirements)]
    return Affinity(node_affinity=NodeAffinity(
        required_during_scheduling_ignored_during_execution=NodeSelector(node_selector_terms=terms)))


def _resource_patch(patched: dict[str, str]) -> str | None:
    """podSpecPatch setting requests and limits of `patched` resources from input parameters."""
    if not patched:
        return None
    quantities = {resource: input_ref(param) for resource, param in sorted(patched.items())}
    patch = {"containers": [{"name": MAIN_CONTAINER, "resources": {"limits": quantities, "requests": quantities}}]}
    return json.dumps(patch, sort_keys=True, separators=(",", ":"))


def _env(cluster: ClusterSpec, hub_token: bool, required: bool,
         extra: dict[str, str]) -> list[Env | SecretEnv | ResourceEnv]:
    hf_home = HF_CACHE_MOUNT if cluster.hf_cache is not None else f"{WORKSPACE_MOUNT}/hf-cache"
    env: list[Env | SecretEnv | ResourceEnv] = [
        Env(name="HF_HOME", value=hf_home),
        Env(name="PYTHONUNBUFFERED", value="1"),
        Env(name="AXOLOTL_DO_NOT_TRACK", value="1"),
        *(ResourceEnv(name=name, resource="limits.cpu") for name in THREAD_ENV),
        *(Env(name=name, value=value) for name, value in extra.items()),
    ]
    if hub_token:
        secret = cluster.hf_token_secret
        env.append(SecretEnv(name="HF_TOKEN", secret_name=secret.name, secret_key=secret.key, optional=not required))
    return env


def _resources(cfg: PipelineConfig, step: StepTemplate, uses_gpu: bool) -> Resources | None:
    if not (step.cpu or step.memory or uses_gpu):
        return None
    return Resources(
        cpu_request=step.cpu,
        cpu_limit=step.cpu,
        memory_request=step.memory,
        memory_limit=step.memory,
        gpus=step.gpus or None,
        gpu_flag=cfg.train.gpu_resource,
    )


def _mounts(cluster: ClusterSpec) -> list[VolumeMount]:
    mounts = [VolumeMount(name=WORKSPACE_VOLUME, mount_path=WORKSPACE_MOUNT)]
    if cluster.hf_cache is not None:
        mounts.append(VolumeMount(name=HF_CACHE_VOLUME, mount_path=HF_CACHE_MOUNT))
    return mounts


def _shm_volume(size: str | None) -> EmptyDirVolume:
    """NCCL, vLLM's workers and DataLoader workers exchange tensors through /dev/shm; the
    container default of 64 MiB makes multi-GPU jobs die with bus errors. The pod's own
    volume, sized per step, counted against the pod's memory limit."""
    return EmptyDirVolume(name=SHM_VOLUME, mount_path=SHM_MOUNT, medium="Memory",
                          size_limit=size)  # type: ignore[arg-type]  # Hera's model parses the quantity string


def _volume(name: str, spec: VolumeSpec) -> ExistingVolume | Volume:
    if spec.existing_claim is not None:
        return ExistingVolume(name=name, claim_name=spec.existing_claim)
    claim = spec.claim_template
    assert claim is not None  # VolumeSpec guarantees exactly one
    return Volume(name=name, size=claim.size, storage_class_name=claim.storage_class, access_modes=[claim.access_mode])


def workflow_volumes(cfg: PipelineConfig) -> list[ExistingVolume | Volume]:
    """Volumes every pod mounts: the workspace and the HF cache (GPU pods add their own /dev/shm)."""
    volumes: list[ExistingVolume | Volume] = [_volume(WORKSPACE_VOLUME, cfg.cluster.workspace)]
    if cfg.cluster.hf_cache is not None:
        volumes.append(_volume(HF_CACHE_VOLUME, cfg.cluster.hf_cache))
    return volumes
