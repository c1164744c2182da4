"""The planner's table: one row per component, per device."""

from __future__ import annotations

from pathlib import Path

from secml_recipes.train.plan.memory import GIB, STRATEGIES
from secml_recipes.train.plan.model import describe


def table(p) -> str:
    b, d, t = p.breakdown, p.device, p.training
    memory = f"{d.memory_gib:.0f} GiB" if d.memory_gib else "memory unknown"
    checkpointing = f"{b.checkpointed_layers} of {p.facts.n_layers} layers checkpointed" + (
        " (auto)" if t.checkpointing == "auto" else ""
    )
    weights = t.quantization or ("bf16" if p.facts.dtype_bytes == 2 else f"{p.facts.dtype_bytes * 8}-bit float")
    if t.trainable == "full" and STRATEGIES[d.strategy].fp32_master and t.mixed_precision:
        weights = "fp32 master" if d.strategy == "fsdp2" else f"{weights} + fp32 master"
    trainable = (
        f"LoRA r={p.model.lora.r} ({p.facts.lora_params / 1e6:.1f}M parameters)" if p.model.lora else "full fine-tune"
    )
    rows = [
        ("weights", b.weights, f"{weights} base" + (", sharded" if STRATEGIES[d.strategy].shards_state else "")),
        ("gradients", b.gradients, trainable),
        ("optimizer state", b.optimizer, t.optimizer),
        ("activations", b.activations, f"{t.micro_batch_tokens} tokens per micro-batch, {checkpointing}"),
        ("LM head workspace", b.lm_head, "TRL's chunked fused head"),
        ("sharding", b.sharding, "gathered layers / DDP buckets" if b.sharding else "-"),
    ]
    lines = [
        f"{p.recipe}: {describe(p.facts)}",
        f"launch: {Path(d.config).name if d.config else '-'} -> {STRATEGIES[d.strategy].label}, "
        f"{d.devices} {d.kind.upper()} device(s) of {memory}",
        "",
        "| per device | GiB | |",
        "|---|---:|---|",
        *(f"| {name} | {value / GIB:.2f} | {why} |" for name, value, why in rows),
        f"| **peak** ({b.peak_at}) | **{b.peak / GIB:.2f}** | + {b.reserve / GIB:.1f} GiB reserve |",
    ]
    if t.checkpointing == "auto" and b.minimum_peak < b.peak:
        lines.append(
            f"| peak with every layer checkpointed | {b.minimum_peak / GIB:.2f} | what `auto` needs at least; "
            "it spends the rest on fewer recomputed layers |"
        )
    if d.memory_gib:
        lines.append(f"| device | {d.memory_gib:.2f} | {'fits' if b.fits else 'DOES NOT FIT'} |")
    lines += [f"note: {n}" for n in b.notes]
    return "\n".join(lines)
