"""Speed keys: choices that make a step faster or leaner and leave its loss unchanged (docs/speed.md).

The keys (`recipe.SpeedArguments`) are resolved per backend, with the rest of the run's settings, by
`secml_recipes.train.run_settings` (attention, Liger kernels, which layers are checkpointed). This module holds what
runs once the settings are known:
- `checkpointed_layers: auto`: activation checkpointing only on as many decoder layers as memory needs.
  What a layer keeps for the backward pass is measured, not guessed: one short forward under
  `saved_tensors_hooks` counts the bytes autograd saves per token in each layer; the budget is the
  accelerator's free memory minus gradients, optimizer state and a reserve, and the batch size is the
  longest micro-batch the training data can form.
"""

from __future__ import annotations

import functools
import logging

import torch
from transformers import TrainerCallback

from secml_recipes.train.plan.activations import (
    decoder_layers,
    measure_saved_bytes_per_token,
    plan_checkpointed_layers,
)
from secml_recipes.train.plan.memory import memory_reserve_bytes, optimizer_bytes_per_param

logger = logging.getLogger(__name__)

GIB = 2**30


def optimizer_state_bytes(args, trainable: list[torch.nn.Parameter]) -> int:
    """Bytes the optimizer will allocate at its first step (the planner's table of optimizers)."""
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

        # lazy: only on TPU (torch_xla)
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
