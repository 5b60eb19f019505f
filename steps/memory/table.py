"""An estimate (the estimate.json dict) as a table: where each GPU's memory goes, at a glance."""
from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from steps.memory.model import COMPONENT_LABELS, COMPONENTS, GIB, STATE_COMPONENTS

BAR_WIDTH = 24


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:,.2f} GiB"


def _bar(share: float) -> Text:
    filled = min(BAR_WIDTH, round(share * BAR_WIDTH))
    return Text("█" * filled, style="cyan") + Text("·" * (BAR_WIDTH - filled), style="dim") + f" {share:.0%}"


def _describe_setup(estimate: dict[str, Any]) -> str:
    setup = estimate["setup"]
    weights = setup["dtype"] if setup["base_quantisation"] == "none" else \
        f"{setup['base_quantisation']} weights, {setup['dtype']} compute"
    parts = [setup["method"], weights, setup["optimizer"],
             f"{setup['sequence_len']} tokens × {setup['micro_batch_size']} per GPU",
             f"gradient checkpointing {setup['gradient_checkpointing']}"]
    if setup["method"] != "full":
        parts.append(f"LoRA r={setup['lora_r']} on {setup['lora_target_modules']}")
    return " · ".join(parts)


def estimate_table(estimate: dict[str, Any]) -> Group:
    gpu_memory = estimate["gpu_memory_bytes"]
    per_gpu = estimate["per_gpu_bytes"]
    gpus = estimate["gpus"]
    header = Text.assemble(
        ("Memory estimate for ", "bold"), (estimate["model"], "bold cyan"), "\n",
        f"{estimate['architecture']}: {estimate['parameters']:,} parameters (from {estimate['counted_from']}), "
        f"{estimate['trainable_parameters']:,} trainable\n",
        _describe_setup(estimate), "\n",
        f"{gpus} GPU{'s' if gpus > 1 else ''} × {estimate['gpu_memory_gib']:g} GiB",
        f" · sharding: {estimate['sharding']}",
    )
    table = Table(show_footer=True, box=None, pad_edge=False)
    table.add_column("on each GPU", footer="total")
    table.add_column("", justify="right", footer=_gib(estimate["per_gpu_total_bytes"]))
    table.add_column(f"share of {estimate['gpu_memory_gib']:g} GiB",
                     footer=f"{estimate['per_gpu_total_bytes'] / gpu_memory:.0%}")
    table.add_column("whole model", justify="right", style="dim")
    for component in COMPONENTS:
        if per_gpu[component] or estimate["bytes"][component] and component in STATE_COMPONENTS:
            whole = _gib(estimate["bytes"][component]) if component in STATE_COMPONENTS else ""
            table.add_row(COMPONENT_LABELS[component], _gib(per_gpu[component]),
                          _bar(per_gpu[component] / gpu_memory), whole)
    verdict = Text("✔ fits", style="bold green") if estimate["fits"] else Text("✘ does not fit", style="bold red")
    verdict += f" · headroom {_gib(estimate['headroom_bytes'])} per GPU"
    advice = Text("\n".join(f"• {line}" for line in estimate["advice"]))
    return Group(header, Text(), table, Text(), verdict, advice)


def print_estimate(estimate: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(estimate_table(estimate))
