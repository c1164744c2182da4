"""Peak memory of one training step on one device: the accounting, with the rules kept as tables.

A step's memory is what stays (weights, gradients, optimizer state) plus what a micro-batch adds (activations saved
for the backward pass, the LM head's workspace, the layers a sharded model gathers). The peak is the largest of a
few moments of the step, each with what is alive then:

- forward done: weights, optimizer state, gradients when they accumulate over micro-batches, every layer's saved
  activations (inputs only for checkpointed layers), the LM head's tile;
- LM head backward: the same, plus the fp32 gradient of the hidden states (and of the head's weight when it trains);
- decoder backward: every gradient, the checkpointed layers' inputs and one recomputed layer (or the layers kept),
  as `checkpointed_layers: auto` counts it (`activations.saved_activation_bytes`);
- optimizer step: weights, gradients, optimizer state.

The activation numbers come from `ModelMemoryFacts` (measured on the meta device), the LM head's from TRL's own chunk
sizes, the sharding's from the rules in `STRATEGIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from secml_recipes.train.plan.activations import saved_activation_bytes
from secml_recipes.train.plan.model import ModelMemoryFacts

GIB = 2**30

# Bytes per trainable parameter for the optimizer's state: (number of states, bytes per state), where None means the
# parameter's own dtype (torch's AdamW keeps its moments in the parameter's dtype). Blockwise 8-bit and 4-bit states
# carry one fp32 scale per block (torchao: 256 / 128 values, bitsandbytes: 256).
OPTIMIZER_STATES: dict[str, tuple[int, float | None]] = {
    **dict.fromkeys(
        (
            "adamw_torch",
            "adamw_torch_fused",
            "adamw_torch_xla",
            "adamw_torch_npu_fused",
            "adamw_apex_fused",
            "adamw_anyprecision",
            "stable_adamw",
            "schedule_free_adamw",
            "grokadamw",
            "ademamix",
        ),
        (2, None),
    ),
    "adamw_torch_8bit": (2, 1 + 4 / 256),
    "adamw_torch_4bit": (2, 0.5 + 4 / 128),
    **dict.fromkeys(
        ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "ademamix_8bit", "paged_ademamix_8bit"), (2, 1 + 4 / 256)
    ),
    "paged_adamw_32bit": (2, 4),
    "lion_8bit": (1, 1 + 4 / 256),
    "paged_lion_8bit": (1, 1 + 4 / 256),
    "lion_32bit": (1, 4),
    "paged_lion_32bit": (1, 4),
    "sgd": (0, None),
    "adagrad": (1, None),
    "rmsprop": (1, None),
    "adafactor": (0, None),  # factored second moment: a row and a column per matrix, negligible here
}
UNKNOWN_OPTIMIZER = (2, 4)  # planned as fp32 AdamW: the common worst case

# Bytes per weight of the frozen base under bitsandbytes (4-bit: one fp32 absmax per 64 values; nested quantization
# stores those as 8-bit with an fp32 scale per 256 of them; 8-bit: one fp32 scale per row, negligible).
QUANTIZED_WEIGHT_BYTES = {
    "nf4": 0.5 + 4 / 64,
    "fp4": 0.5 + 4 / 64,
    "nf4+nested": 0.5 + 1 / 64 + 4 / (64 * 256),
    "fp4+nested": 0.5 + 1 / 64 + 4 / (64 * 256),
    "int8": 1.0,
}


@dataclass(frozen=True)
class Strategy:
    """How a launch places the model: what is divided over the devices and what each device holds extra."""

    label: str
    shards_state: bool  # weights, gradients and optimizer state divided over the devices
    gathered_layers: int  # decoder layers held whole at a time (the one computing and the one prefetched)
    gradient_buckets: bool  # DDP's bucketed copy of the gradients
    fp32_master: bool  # trainable weights kept in fp32 besides the compute copy (accelerate FSDP2 mixed precision,
    # DeepSpeed's optimizer partition)
    activations_checkpointable: bool = True  # False on XLA: every layer stays checkpointed (secml_recipes.train.speed)


STRATEGIES: dict[str, Strategy] = {
    "single": Strategy("one device", False, 0, False, False),
    "ddp": Strategy("DDP (a full replica per device)", False, 0, True, False),
    "fsdp2": Strategy("FSDP2 full shard", True, 2, False, True),
    "zero3": Strategy("DeepSpeed ZeRO-3", True, 2, False, True),
    "xla_dp": Strategy("XLA data parallel (a full replica per device)", False, 0, False, False, False),
    "xla_spmd": Strategy("XLA SPMD FSDPv2", True, 2, False, False, False),
}


@dataclass(frozen=True)
class Training:
    """What one device trains, in the planner's terms (built from a recipe by `plan.training_from_recipe`)."""

    trainable: str  # "full" or "lora"
    quantization: str | None  # None, "nf4", "fp4", "nf4+nested", "fp4+nested", "int8"
    optimizer: str
    micro_batch_tokens: int  # tokens one device computes per micro-batch (padded ones included)
    checkpointing: str  # "all", "none", "auto" or a number of layers
    gradient_accumulation: int = 1
    mixed_precision: bool = True  # bf16/fp16 compute on a device that supports it


@dataclass(frozen=True)
class Device:
    """The launch: strategy, how many devices, and what one of them holds."""

    strategy: str
    devices: int
    memory_gib: float | None  # None: unknown (planned, never refused)
    kind: str = "gpu"  # gpu, tpu or cpu
    config: str = ""  # the accelerate config it came from


@dataclass
class Breakdown:
    """Bytes per device, by component, and the moment of the step that peaks."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    lm_head: float
    sharding: float  # gathered layers, DDP buckets
    peak: float
    peak_at: str
    checkpointed_layers: int
    reserve: float
    notes: list[str] = field(default_factory=list)

    capacity: float | None = None
    minimum_peak: float = 0.0  # with every layer checkpointed (what `auto` needs at least)

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.minimum_peak + self.reserve <= self.capacity


def memory_reserve_bytes(total_bytes: float) -> float:
    """What stays off-limits on a device: CUDA context, kernels' workspaces, allocator fragmentation."""
    return max(2 * GIB, 0.08 * total_bytes)


def optimizer_bytes_per_param(optimizer: str, param_bytes: float) -> tuple[float, bool]:
    """(state bytes per trainable parameter, whether the optimizer is in the table)."""
    states, per_state = OPTIMIZER_STATES.get(optimizer, UNKNOWN_OPTIMIZER)
    return states * (param_bytes if per_state is None else per_state), optimizer in OPTIMIZER_STATES


def _lm_head_workspace(
    facts: ModelMemoryFacts, tokens: int, compute_bytes: int, head_trains: bool
) -> tuple[float, float]:
    """(forward, backward) bytes of TRL's fused LM head: a [tokens tile x vocab chunk] buffer, the fp32 gradient of
    the hidden states, and for a trained head its fp32 weight gradient and the cast copy."""
    # lazy: the torch stack loads only when a model is touched
    from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    tile = min(tokens, TOKEN_CHUNK_SIZE) * min(_CHUNKED_LOGPROB_CHUNK_SIZE, facts.vocab) * compute_bytes
    forward = tile + tokens * facts.hidden * compute_bytes  # the normed hidden states it keeps for backward
    backward = forward + tokens * facts.hidden * 4
    if head_trains:
        head = facts.vocab * facts.hidden
        backward += head * 4 + head * compute_bytes
    return forward, backward


def checkpointed_count(setting: str, n_layers: int) -> int | None:
    if setting == "all":
        return n_layers
    if setting == "none":
        return 0
    if setting == "auto":
        return None
    return min(int(setting), n_layers)


def plan_memory(facts: ModelMemoryFacts, training: Training, device: Device) -> Breakdown:
    """Peak bytes per device for one step (module docstring), and whether it fits `device.memory_gib`."""
    strategy = STRATEGIES[device.strategy]
    n = device.devices if strategy.shards_state else 1
    compute_bytes = facts.dtype_bytes  # what layers compute in (bf16 recipes; FSDP2 casts its fp32 masters to it)
    notes: list[str] = []

    # --- weights ------------------------------------------------------------------------------------------
    lora = training.trainable == "lora"
    trainable = facts.lora_params if lora else facts.total_params
    trainable_bytes = 4 if lora or (strategy.fp32_master and training.mixed_precision) else facts.dtype_bytes
    if lora:
        if training.quantization:
            quantized = facts.quantizable_params
            frozen = quantized * QUANTIZED_WEIGHT_BYTES[training.quantization]
            frozen += (facts.total_params - quantized) * facts.dtype_bytes
        else:
            frozen = facts.total_params * facts.dtype_bytes
        weights = (frozen + trainable * trainable_bytes) / n
    else:
        weights = facts.total_params * trainable_bytes / n
        if strategy.fp32_master and training.mixed_precision and device.strategy == "zero3":
            # DeepSpeed keeps bf16 weights for compute and an fp32 copy in its optimizer partition
            weights = facts.total_params * (facts.dtype_bytes + 4) / n

    # --- gradients and optimizer state ------------------------------------------------------------------------
    gradients = trainable * trainable_bytes / n
    per_param, known = optimizer_bytes_per_param(training.optimizer, trainable_bytes)
    if not known:
        notes.append(f"optimizer {training.optimizer} is not in the planner's table: planned as fp32 AdamW")
    optimizer = trainable * per_param / n

    # --- what sharding adds -------------------------------------------------------------------------------
    sharding = 0.0
    if strategy.gathered_layers:
        layer = facts.largest_layer_params
        root = facts.total_params - facts.n_layers * layer  # embeddings, LM head, final norm: one FSDP unit
        sharding = (strategy.gathered_layers * layer + max(root, 0)) * compute_bytes
        if not lora:  # a layer's full gradients before the reduce-scatter
            sharding += layer * trainable_bytes
    if strategy.gradient_buckets:
        sharding += trainable * trainable_bytes

    # --- activations --------------------------------------------------------------------------------------------
    tokens = training.micro_batch_tokens
    full = facts.full_layer_bytes_per_token
    kept_input = facts.layer_input_bytes_per_token
    steady = weights + optimizer + sharding
    setting = training.checkpointing
    if not strategy.activations_checkpointable and setting != "none":
        setting = "all"
    checkpointed = checkpointed_count(setting, facts.n_layers)
    head_fwd, head_bwd = _lm_head_workspace(facts, tokens, compute_bytes, head_trains=not lora)
    reserve = memory_reserve_bytes(device.memory_gib * GIB) if device.memory_gib else 0.0
    accumulating = gradients if training.gradient_accumulation > 1 else 0.0
    # 4-bit expert stacks are dequantized when their layer runs, and kept for backward while it is live
    dequantized_experts = facts.expert_params / facts.n_layers * compute_bytes if training.quantization else 0.0

    def step(checkpointed: int) -> tuple[float, str, float]:
        kept = facts.n_layers - checkpointed
        live = max(kept, 1 if checkpointed else 0)
        forward_saved = tokens * (kept * full + checkpointed * kept_input) + live * dequantized_experts
        backward_saved = (
            saved_activation_bytes(facts.n_layers, checkpointed, full, kept_input, tokens) + live * dequantized_experts
        )
        moments = {
            "forward": steady + accumulating + forward_saved + head_fwd,
            "LM-head backward": steady + accumulating + forward_saved + head_bwd,
            "decoder backward": steady + gradients + backward_saved,
            "optimizer step": steady + gradients,
        }
        at = max(moments, key=moments.get)
        return moments[at], at, max(forward_saved, backward_saved)

    minimum = step(facts.n_layers)[0]
    capacity = device.memory_gib * GIB if device.memory_gib else None
    if checkpointed is None:  # auto: the fewest checkpointed layers that fit, as the trainer chooses
        checkpointed = (
            facts.n_layers
            if capacity is None
            else next((k for k in range(facts.n_layers + 1) if step(k)[0] + reserve <= capacity), facts.n_layers)
        )
    peak, peak_at, activations = step(checkpointed)
    return Breakdown(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        lm_head=head_bwd,
        sharding=sharding,
        peak=peak,
        peak_at=peak_at,
        checkpointed_layers=checkpointed,
        reserve=reserve,
        notes=notes,
        capacity=capacity,
        minimum_peak=min(minimum, peak) if setting == "auto" else peak,
    )
