"""MoE experts with static shapes for XLA (TPU): the generalist's Mixtral runs there without a new graph per batch.

transformers' fused-expert implementations do not suit XLA: `grouped_mm` counts tokens per expert with an integer
`histc` that XLA hands back to the CPU, which has no integer kernel (the step fails), `eager` gathers each expert's
tokens with data-dependent shapes (a new graph whenever the routing changes), and `batched_mm` gathers two full
expert matrices per token. `static_dense` runs every expert on every token and weights the results by the router
(zero where a token is not routed): the same output, shapes that never depend on the routing, at E/k times the
expert FLOPs (4x for Mixtral's 8 experts, top-2). It is registered with transformers' `ExpertsInterface` and chosen
by the trainer on XLA only.
"""

from __future__ import annotations

import torch
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

NAME = "static_dense"


def static_dense_experts_forward(
    self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """(tokens, hidden) -> (tokens, hidden) for gated, concatenated, untransposed expert stacks without bias
    (Mixtral, Qwen3-MoE): gate_up_proj (E, 2I, H), down_proj (E, H, I)."""
    if self.is_transposed or self.has_bias or not self.has_gate or not self.is_concatenated:
        raise NotImplementedError(f"{NAME} covers gated experts without bias in (E, out, in) layout")
    routing = torch.zeros(
        hidden_states.shape[0], self.num_experts, dtype=top_k_weights.dtype, device=hidden_states.device
    ).scatter_add(1, top_k_index, top_k_weights)
    gate_up = torch.einsum("th,eoh->eto", hidden_states, self.gate_up_proj)
    out = torch.einsum("eti,ehi->eth", self._apply_gate(gate_up), self.down_proj)
    return torch.einsum("eth,te->th", out, routing.to(out.dtype)).to(hidden_states.dtype)


ALL_EXPERTS_FUNCTIONS.register(NAME, static_dense_experts_forward)


def use_static_experts(model) -> bool:
    """Switch a MoE model (or the model under a PEFT wrapper) to `static_dense`; False for models without experts."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not any(hasattr(m, "_apply_gate") for m in base.modules()):
        return False
    base.set_experts_implementation(NAME)
    return True
