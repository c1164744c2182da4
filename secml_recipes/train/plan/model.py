"""What a model's memory is made of, from its config.json alone (nothing is downloaded or loaded).

The model is built on the meta device (shapes without storage) by transformers itself, so every family it knows
(Llama, Mistral, Mixtral, Qwen3 dense and MoE, Gemma 3, ...) is counted the same way: parameters by role (what
bitsandbytes would quantize, fused expert stacks, embeddings, the rest), the LoRA adapter PEFT would add for the
recipe, and the bytes each decoder layer saves for the backward pass per token. The last one is measured the way
`checkpointed_layers: auto` measures it on a real GPU (`plan/activations.measure_saved_bytes_per_token`), by running the
model's own forward on meta tensors, with the attention kernel a GPU runs (flash: it keeps q, k, v, the output and
the log-sum-exp, never a T x T matrix).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

from secml_recipes.model_config import ModelConfigError, read_model_config
from secml_recipes.train.plan.activations import decoder_layers, measure_saved_bytes_per_token
from secml_recipes.train.xla_experts import use_static_experts

PROBE_TOKENS = 256
PROBE_ATTENTION = "secml_kernel_probe"
_FusedAttentionSaves = None  # built on first use (torch is imported lazily)


class PlanError(ValueError):
    """A launch the planner refuses or cannot plan; the message says what would be right, one line per fix."""


def load_model_config(name_or_path: str, revision: str | None = None):
    """The transformers config the planner builds the model from (`model_config.read_model_config`)."""
    try:
        return read_model_config(name_or_path, revision).config
    except ModelConfigError as err:
        raise PlanError(str(err)) from None


@dataclass(frozen=True)
class LoraShape:
    """The adapter a recipe asks for (TRL ModelConfig keys)."""

    r: int
    target_modules: tuple[str, ...] | None
    target_parameters: tuple[str, ...] | None = None
    dropout: float = 0.0


@dataclass
class ModelMemoryFacts:
    """Counts and measured per-token activation bytes of one model at one dtype, with or without an adapter."""

    name: str
    model_type: str
    dtype_bytes: int
    n_layers: int
    hidden: int
    vocab: int
    total_params: int
    quantizable_params: int  # what 4-bit loading turns into NF4 blocks: nn.Linear weights (not the LM head), experts
    expert_params: int  # fused 3-D expert stacks (part of quantizable_params)
    lm_head_params: int  # the output projection, kept unquantized (0 when tied to the embeddings)
    largest_layer_params: int  # one decoder layer: what FSDP/ZeRO gather at a time
    lora_params: int  # adapter parameters (fp32, PEFT's default upcast)
    layer_bytes_per_token: list[float]  # saved for backward by each decoder layer, checkpointing off
    layer_input_bytes_per_token: float  # what a checkpointed layer keeps: its input

    @property
    def full_layer_bytes_per_token(self) -> float:
        return max(self.layer_bytes_per_token)


def _dtype(name: str | None, config):
    # lazy: the torch stack loads only when a model is touched
    import torch

    if name in (None, "auto"):
        name = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
    return name if isinstance(name, torch.dtype) else getattr(torch, str(name).replace("torch.", ""))


def _fused_attention_probe(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
):
    """transformers attention function for the probe: what a fused causal kernel with grouped-query heads (flash
    attention, torch's varlen kernel, SDPA with enable_gqa) keeps for backward. On the meta device there are no
    values, so only the shapes of what it saves matter."""
    return _FusedAttentionSaves.apply(query, key, value).transpose(1, 2).contiguous(), None


def _fused_attention_class():
    # lazy: the torch stack loads only when a model is touched
    import torch

    class FusedAttentionSaves(torch.autograd.Function):
        """q, k and v (k/v at their own head count), the output and an fp32 log-sum-exp per head and token."""

        @staticmethod
        def forward(ctx, query, key, value):
            out = torch.empty_like(query)
            ctx.save_for_backward(query, key, value, out, query.new_empty(query.shape[:-1], dtype=torch.float32))
            return out

        @staticmethod
        def backward(ctx, grad):  # never run: the probe only counts what the forward saves
            query, key, value, _, _ = ctx.saved_tensors
            return torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value)

    return FusedAttentionSaves


def _no_mask(*args, **kwargs):
    return None


@functools.cache
def _register_probe() -> str:
    # lazy: the torch stack loads only when a model is touched
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    global _FusedAttentionSaves
    _FusedAttentionSaves = _fused_attention_class()
    AttentionInterface.register(PROBE_ATTENTION, _fused_attention_probe)
    AttentionMaskInterface.register(PROBE_ATTENTION, _no_mask)
    return PROBE_ATTENTION


@contextlib.contextmanager
def _grouped_mm_on_meta():
    """Fused MoE experts: torch's grouped_mm has a bf16-only meta kernel; other dtypes take transformers' own
    fallback op (what they take on devices without the kernel), which has a meta implementation."""
    # lazy: the torch stack loads only when a model is touched
    from transformers.integrations import moe

    original = moe._can_use_grouped_mm

    def can_use(input, weight, offs):
        if weight.device.type == "meta":
            # lazy: the torch stack loads only when a model is touched
            # lazy: the torch stack loads only when a model is touched
            import torch

            return weight.dtype == torch.bfloat16
        return original(input, weight, offs)

    moe._can_use_grouped_mm = can_use
    try:
        yield
    finally:
        moe._can_use_grouped_mm = original


def _lora_config(lora: LoraShape):
    # lazy: the torch stack loads only when a model is touched
    from peft import LoraConfig

    kwargs = {"target_parameters": list(lora.target_parameters)} if lora.target_parameters else {}
    return LoraConfig(
        r=lora.r,
        lora_alpha=2 * lora.r,
        lora_dropout=lora.dropout,
        bias="none",
        target_modules=list(lora.target_modules) if lora.target_modules else None,
        task_type="CAUSAL_LM",
        **kwargs,
    )


@functools.cache
def model_facts(
    name_or_path: str,
    dtype: str | None = None,
    lora: LoraShape | None = None,
    revision: str | None = None,
    xla: bool = False,
) -> ModelMemoryFacts:
    """Build the model on the meta device and count it (see module docstring). Cached: fixes re-plan often. `xla`:
    MoE experts as the trainer runs them on XLA (`xla_experts.static_dense`: every expert on every token)."""
    config = load_model_config(name_or_path, revision)
    torch_dtype = _dtype(dtype, config)
    with warnings.catch_warnings(), _without_zero3_init():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations, raised by PEFT: not the user's
        return _facts(name_or_path, config, torch_dtype, lora, xla)


@contextlib.contextmanager
def _without_zero3_init():
    """Under a DeepSpeed ZeRO-3 launch, transformers builds models inside `deepspeed.zero.Init`, which partitions
    them; the planner's skeleton must stay a plain meta-device model, so ZeRO-3 is hidden while it is built."""
    # lazy: the torch stack loads only when a model is touched
    from transformers.integrations import deepspeed

    saved = deepspeed._hf_deepspeed_config_weak_ref
    deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = saved


def _facts(name_or_path: str, config, torch_dtype, lora: LoraShape | None, xla: bool) -> ModelMemoryFacts:
    # lazy: the torch stack loads only when a model is touched
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, attn_implementation=_register_probe())
    if xla:
        use_static_experts(model)
    text = config.get_text_config()
    out_embed = model.get_output_embeddings()
    in_embed = model.get_input_embeddings()
    tied = out_embed is not None and out_embed.weight is in_embed.weight
    lm_head = 0 if tied or out_embed is None else out_embed.weight.numel()
    linear = sum(m.weight.numel() for m in model.modules() if type(m) is nn.Linear and m is not out_embed)
    experts = sum(p.numel() for p in model.parameters() if p.dim() == 3)
    layers = decoder_layers(model)
    text_layers = [layer for layer in layers if sum(p.numel() for p in layer.parameters()) > 0]
    largest = max(sum(p.numel() for p in layer.parameters()) for layer in text_layers)
    total = sum(p.numel() for p in model.parameters())
    lora_params = 0
    if lora is not None:
        # lazy: the torch stack loads only when a model is touched
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(lora))
        lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        decoder = model.get_base_model().get_decoder()
    else:
        decoder = model.get_decoder()
    # A prepared 4-D mask skips transformers' mask building, which reads tensor values (meta tensors have none);
    # the probe's attention ignores it, as a fused causal kernel does.
    mask = torch.ones(1, 1, PROBE_TOKENS, PROBE_TOKENS, dtype=torch.bool, device="meta")
    with _grouped_mm_on_meta():
        per_layer = measure_saved_bytes_per_token(decoder, PROBE_TOKENS, text.vocab_size, attention_mask=mask)
    # Vision towers (Gemma 3) have checkpointable layers too; only the text decoder runs on text batches.
    per_layer = [b for b in per_layer if b > 0] or per_layer
    return ModelMemoryFacts(
        name=name_or_path,
        model_type=config.model_type,
        dtype_bytes=torch.empty((), dtype=torch_dtype).element_size(),
        n_layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        vocab=text.vocab_size,
        total_params=total,
        quantizable_params=linear + experts,
        expert_params=experts,
        lm_head_params=lm_head,
        largest_layer_params=largest,
        lora_params=lora_params,
        layer_bytes_per_token=per_layer,
        layer_input_bytes_per_token=text.hidden_size * max(torch.empty((), dtype=torch_dtype).element_size(), 2),
    )


def describe(facts: ModelMemoryFacts) -> str:
    moe = f", experts {facts.expert_params / 1e9:.1f}B" if facts.expert_params else ""
    return (
        f"{facts.name} ({facts.model_type}): {facts.total_params / 1e9:.2f}B parameters{moe}, "
        f"{facts.n_layers} layers, hidden {facts.hidden}, vocab {facts.vocab}"
    )
