"""What a decoder layer keeps for the backward pass: measured per token on a real (or meta-device) model, and the
peak it makes with some layers checkpointed. The planner predicts with it before a launch; `checkpointed_layers:
auto` (speed.py) sizes checkpointing with it at the start of a run, so both count memory the same way."""

from __future__ import annotations

import torch


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers transformers can checkpoint one by one, in order."""
    # lazy: the torch stack loads only when a model is touched
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
