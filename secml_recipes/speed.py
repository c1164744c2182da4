"""Speed keys: choices that make a step faster or leaner and leave its loss unchanged (docs/speed.md).

The keys (`SpeedArguments`) are resolved per backend, with the rest of the run's settings, by
`secml_recipes.run_settings` (attention, Liger kernels, which layers are checkpointed). This module holds what
runs once the settings are known:
- `checkpointed_layers: auto`: activation checkpointing only on as many decoder layers as memory needs.
  What a layer keeps for the backward pass is measured, not guessed: one short forward under
  `saved_tensors_hooks` counts the bytes autograd saves per token in each layer; the budget is the
  accelerator's free memory minus gradients, optimizer state and a reserve, and the batch size is the
  longest micro-batch the training data can form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

GIB = 2**30


@dataclass
class SpeedArguments:
    """Recipe keys for speed choices that do not change the loss (see module docstring)."""

    checkpointed_layers: str = field(
        default="all",
        metadata={
            "help": "with activation_checkpointing: 'all' decoder layers, 'auto' (as few as the memory budget "
            "allows, measured), or a number N (the first N layers)"
        },
    )
    activation_memory_gib: float | None = field(
        default=None,
        metadata={
            "help": "memory for saved activations that 'auto' may plan with (default: the accelerator's "
            "free memory after weights, gradients, optimizer state and a reserve)"
        },
    )
    memory_limit_gib: float | None = field(
        default=None,
        metadata={
            "help": "plan 'auto' as if the accelerator had only this much memory for the whole run (a shared "
            "GPU, or a benchmark's memory bound); default: all of it"
        },
    )
    liger_kernels: str = field(
        default="auto",
        metadata={
            "help": "Liger RMSNorm/SwiGLU/RoPE kernels: auto (on CUDA when liger-kernel is installed), true, false",
            "choices": ["auto", "true", "false"],
        },
    )

    def __post_init__(self):
        value = str(self.checkpointed_layers).strip().lower()
        if value not in ("all", "auto") and not value.isdigit():
            raise ValueError(
                f"checkpointed_layers must be 'all', 'auto' or a number of layers, got {self.checkpointed_layers!r}"
            )
        self.checkpointed_layers = value
        for key in ("activation_memory_gib", "memory_limit_gib"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers transformers can checkpoint one by one, in order."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def measure_saved_bytes_per_token(
    model: torch.nn.Module, tokens: int, vocab_size: int, **forward_kwargs
) -> list[float]:
    """Bytes autograd saves for the backward pass, per token, in each decoder layer, from one forward of
    `tokens` tokens with checkpointing off. Weights (and views of them) are not counted; the random state is
    restored afterwards, so training is not changed by the probe. `forward_kwargs` go to the model's forward."""
    layers = decoder_layers(model)
    # One key per allocation, shared by its views, on every device (meta included: the planner probes there).
    # FSDP2 parameters are DTensors: their local shard holds the storage.
    param_storages = {getattr(p, "_local_tensor", p).untyped_storage()._cdata for p in model.parameters()}
    per_layer: list[dict[int, int]] = [dict() for _ in layers]
    current = [None]

    def pack(t: torch.Tensor):
        if current[0] is not None and isinstance(t, torch.Tensor):
            storage = t.untyped_storage()
            if storage._cdata not in param_storages:
                per_layer[current[0]][storage._cdata] = storage.nbytes()
        return t

    hooks = []
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(lambda m, a, i=i: current.__setitem__(0, i)))
        hooks.append(layer.register_forward_hook(lambda m, a, o: current.__setitem__(0, None)))
    flags = [getattr(layer, "gradient_checkpointing", False) for layer in layers]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        for layer in layers:
            layer.gradient_checkpointing = False
        model.train()
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ids = torch.randint(0, vocab_size, (1, tokens), device=device)
            with torch.enable_grad():
                model(input_ids=ids, use_cache=False, **forward_kwargs)
    finally:
        for h in hooks:
            h.remove()
        for layer, flag in zip(layers, flags):
            layer.gradient_checkpointing = flag
        model.train(was_training)
    return [sum(d.values()) / tokens for d in per_layer]


def saved_activation_bytes(
    n_layers: int, checkpointed: int, full_bytes_per_token: float, checkpointed_bytes_per_token: float, tokens: int
) -> float:
    """Peak bytes of saved activations for `tokens` tokens with the first `checkpointed` layers checkpointed. The
    backward pass frees the kept (later) layers before it recomputes the checkpointed ones, one at a time, so the
    peak is max(kept layers, one recomputed layer) plus the checkpointed layers' inputs."""
    kept = n_layers - checkpointed
    live = max(kept, 1 if checkpointed else 0)
    return tokens * (live * full_bytes_per_token + checkpointed * checkpointed_bytes_per_token)


def plan_checkpointed_layers(
    n_layers: int, full_bytes_per_token: float, checkpointed_bytes_per_token: float, tokens: int, budget_bytes: float
) -> int:
    """How many layers (the first ones) must be checkpointed so that saved activations for `tokens` tokens fit
    `budget_bytes` (see `saved_activation_bytes`)."""
    for checkpointed in range(0, n_layers + 1):
        need = saved_activation_bytes(
            n_layers, checkpointed, full_bytes_per_token, checkpointed_bytes_per_token, tokens
        )
        if need <= budget_bytes:
            return checkpointed
    return n_layers


def optimizer_state_bytes(args, trainable: list[torch.nn.Parameter]) -> int:
    """Bytes the optimizer will allocate at its first step (the planner's table of optimizers)."""
    from .plan.memory import optimizer_bytes_per_param

    name = str(getattr(args.optim, "value", args.optim))
    numel = sum(p.numel() for p in trainable)
    itemsize = max((p.element_size() for p in trainable), default=4)
    return int(numel * optimizer_bytes_per_param(name, itemsize)[0])


class SelectiveCheckpointing(TrainerCallback):
    """Turns activation checkpointing off on the layers that memory allows, once the trainer has enabled it.
    `settings` is the run's `RunSettings` (checkpointed_layers, activation_memory_gib, memory_limit_gib)."""

    def __init__(self, settings, max_batch_tokens: int, probe_tokens: int = 256):
        self.settings = settings
        self.max_batch_tokens = max_batch_tokens
        self.probe_tokens = probe_tokens
        self.checkpointed: int | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not args.activation_checkpointing or model is None or self.settings.checkpointed_layers == "all":
            return
        layers = decoder_layers(model)
        if not layers:
            return
        if self.settings.checkpointed_layers.isdigit():
            self.checkpointed = min(int(self.settings.checkpointed_layers), len(layers))
        else:
            self.checkpointed = self._auto(args, model, layers)
            if self.checkpointed is None:
                return
        for i, layer in enumerate(layers):
            layer.gradient_checkpointing = i < self.checkpointed
        logger.info(
            "activation checkpointing on %d of %d decoder layers (checkpointed_layers=%s)",
            self.checkpointed,
            len(layers),
            self.settings.checkpointed_layers,
        )

    def _auto(self, args, model, layers) -> int | None:
        device = next(model.parameters()).device
        budget = self.settings.activation_memory_gib
        if budget is not None:
            budget_bytes = budget * GIB
        elif device.type == "cuda":
            trainable = [p for p in model.parameters() if p.requires_grad]
            free, total = torch.cuda.mem_get_info(device)
            if self.settings.memory_limit_gib is not None:
                total = self.settings.memory_limit_gib * GIB
                free = min(free, total - torch.cuda.memory_allocated(device))
            grads = sum(p.numel() * p.element_size() for p in trainable)
            from .plan.memory import memory_reserve_bytes

            reserve = memory_reserve_bytes(total)  # LM-head chunks, kernels' workspaces, fragmentation
            budget_bytes = free - grads - optimizer_state_bytes(args, trainable) - reserve
        else:
            logger.info(
                "checkpointed_layers=auto without activation_memory_gib on %s: every layer stays checkpointed",
                device.type,
            )
            return None
        vocab = model.get_input_embeddings().num_embeddings
        per_layer = measure_saved_bytes_per_token(model, self.probe_tokens, vocab)
        full = max(per_layer)
        hidden = model.get_input_embeddings().embedding_dim
        dtype_bytes = next(p for p in model.parameters() if p.is_floating_point()).element_size()
        checkpointed_cost = hidden * max(dtype_bytes, 2)  # a checkpointed layer keeps only its input
        chosen = plan_checkpointed_layers(len(layers), full, checkpointed_cost, self.max_batch_tokens, budget_bytes)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank checkpoints the same layers: the most any rank needs (free memory differs per device).
            agreed = torch.tensor([chosen], device=device if device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            chosen = int(agreed.item())
        logger.info(
            "checkpointed_layers=auto: a layer saves %.1f KiB per token; %d tokens per micro-batch at most; "
            "budget %.1f GiB -> %d of %d layers checkpointed",
            full / 1024,
            self.max_batch_tokens,
            budget_bytes / GIB,
            chosen,
            len(layers),
        )
        return chosen


class XlaCheckpointing(TrainerCallback):
    """On XLA, checkpointed layers recompute through torch_xla's checkpoint: torch's own looks up a `torch.xla` device
    module for the RNG state, which does not exist, and fails at the first step."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        import functools

        from torch_xla.utils.checkpoint import checkpoint

        recompute = functools.partial(checkpoint, use_reentrant=True)
        for module in model.modules():
            if hasattr(module, "_gradient_checkpointing_func"):
                module._gradient_checkpointing_func = recompute


def longest_micro_batch_tokens(lengths: list[int], batch_size: int, padding_free: bool) -> int:
    """The most tokens one micro-batch of the data can hold: the longest rows together (padding-free), or the
    longest row times the batch size (padded)."""
    if not lengths:
        return 0
    top = sorted(lengths, reverse=True)[:batch_size]
    return sum(top) if padding_free else top[0] * batch_size
