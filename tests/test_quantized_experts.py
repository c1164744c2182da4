"""QLoRA on fused-expert MoE models: `load_in_4bit` leaves no expert weight in bf16 (Mixtral through the generalist's
own trainer, Qwen3-MoE through `from_pretrained`), training steps run, and the adapter saves and merges."""

from __future__ import annotations

import pytest
import torch

from helpers import make_trainer
from secml_recipes.train.quantized_experts import ExpertsBitsAndBytesConfig, expert_stack_dtypes


def _no_float_expert_stack(model) -> None:
    stacks = expert_stack_dtypes(model)
    assert stacks and all(dtype == torch.uint8 for dtype in stacks.values()), stacks
    assert not [n for n, p in model.named_parameters() if p.dim() == 3 and p.is_floating_point()]


@pytest.mark.slow
def test_mixtral_qlora_quantizes_every_expert_trains_saves_and_merges(tiny_models, tmp_path, episode_with_tools):
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from secml_recipes.deploy.merge import merge_adapter

    base_path = tiny_models["mixtral"]
    trainer = make_trainer(
        "generalist",
        base_path,
        [episode_with_tools] * 4,
        tmp_path,
        "--load_in_4bit",
        "true",
        "--dtype",
        "bfloat16",
        "--max_steps",
        "2",
        "--lora_dropout",
        "0.0",
    )
    model = trainer.model
    _no_float_expert_stack(model)
    layers = model.get_base_model().model.layers
    assert all(
        isinstance(getattr(layer.self_attn, p).base_layer, bnb.nn.Linear4bit)
        for layer in layers
        for p in ("q_proj", "v_proj")
    )
    # The 4-bit stacks read back as the original experts, within NF4's error.
    original = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16)
    for quantized, reference in zip(layers, original.model.layers):
        for name in ("gate_up_proj", "down_proj"):
            q, ref = getattr(quantized.mlp.experts, name).float(), getattr(reference.mlp.experts, name).float()
            assert q.shape == ref.shape and (q - ref).norm() / ref.norm() < 0.15

    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(p.detach(), adapters[n]) for n, p in model.named_parameters() if n in adapters)

    adapter_dir = tmp_path / "adapter"
    trainer.save_model(str(adapter_dir))
    assert (adapter_dir / "adapter_model.safetensors").is_file()
    merged_dir = merge_adapter(adapter_dir, tmp_path / "merged", dtype="float32")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), adapter_dir
    )
    ids = torch.randint(3, merged.config.vocab_size, (1, 24))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, rtol=1e-4, atol=1e-4)


def test_qwen3_moe_fused_experts_load_in_4bit(tmp_path):
    from transformers import AutoModelForCausalLM, Qwen3MoeConfig

    config = Qwen3MoeConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        moe_intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    quant = ExpertsBitsAndBytesConfig(bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant, dtype=torch.bfloat16)
    _no_float_expert_stack(model)
    assert model.is_loaded_in_4bit
    with torch.no_grad():
        assert torch.isfinite(model(torch.randint(0, 256, (1, 8))).logits).all()


@pytest.mark.parametrize("quant", [None, "8bit"])
def test_other_quantization_settings_are_left_alone(quant):
    from transformers import BitsAndBytesConfig

    from secml_recipes.train.quantized_experts import experts_aware

    config = None if quant is None else BitsAndBytesConfig(load_in_8bit=True)
    assert experts_aware(config) is config
