"""QLoRA that quantizes MoE experts too: `load_in_4bit` for models whose experts are fused 3-D parameters.

transformers 5 stores a MoE layer's experts as two stacked parameters (`gate_up_proj`, `down_proj`: experts x out x
in; Mixtral, Qwen3-MoE, ...). Its bitsandbytes 4-bit loading (5.24) replaces `nn.Linear` layers only, so those stacks
stay bf16: ~90 of Mixtral-8x7B's 93 GB. This quantizer is transformers' own bitsandbytes 4-bit quantizer extended at
its documented seams (`param_needs_quantization`, the quantize op, `_process_model_after_weight_loading`):

- every fused expert stack is quantized to NF4 (or FP4, nested statistics as configured) as it is loaded, one
  layer's stack at a time, so the bf16 experts are never whole on the device;
- the packed stack is read back through bitsandbytes' parametrization for non-Linear parameters
  (`bitsandbytes.nn.parametrize`): the layer's experts are dequantized when the layer runs and dropped after it;
- everything else is as with plain `load_in_4bit` (attention and dense MLPs `Linear4bit`, router, norms and
  embeddings kept in the compute dtype), and the model reports itself as a bitsandbytes 4-bit model, so TRL, PEFT
  and the Trainer treat it as one.

LoRA still targets q_proj/v_proj (or the expert stacks through PEFT's `lora_target_parameters`). The adapter is
merged into the full-precision base by `secml_recipes.deploy.merge`, never into the quantized one.
"""

from __future__ import annotations

from transformers import BitsAndBytesConfig
from transformers.integrations.bitsandbytes import Bnb4bitQuantize
from transformers.quantizers.auto import register_quantization_config, register_quantizer
from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer
from transformers.quantizers.quantizers_utils import get_module_from_name
from transformers.utils.quantization_config import QuantizationMethod

QUANT_METHOD = "bitsandbytes_4bit_experts"


@register_quantization_config(QUANT_METHOD)
class ExpertsBitsAndBytesConfig(BitsAndBytesConfig):
    """`BitsAndBytesConfig(load_in_4bit=True, ...)` that also quantizes fused expert parameters."""

    def __init__(self, *args, **kwargs):
        kwargs["load_in_4bit"] = True
        super().__init__(*args, **kwargs)
        self.quant_method = QUANT_METHOD

    @classmethod
    def from_bitsandbytes(cls, config: BitsAndBytesConfig) -> ExpertsBitsAndBytesConfig:
        keys = (
            "bnb_4bit_compute_dtype",
            "bnb_4bit_quant_type",
            "bnb_4bit_use_double_quant",
            "bnb_4bit_quant_storage",
            "llm_int8_skip_modules",
        )
        return cls(**{key: getattr(config, key) for key in keys})


def is_expert_stack(model, param_name: str) -> bool:
    """A fused expert parameter: a 3-D floating weight outside nn.Linear (one matrix per expert)."""
    try:
        module, name = get_module_from_name(model, param_name)
    except (AttributeError, ValueError):
        return False
    param = getattr(module, name, None)
    return param is not None and param.dim() == 3 and param.is_floating_point()


class _QuantizeExpertsToo(Bnb4bitQuantize):
    """The 4-bit quantize op: `Linear4bit` weights as transformers does it; expert stacks packed to NF4/FP4 with
    their quantization state kept for `_process_model_after_weight_loading`."""

    def convert(self, input_dict, full_layer_name=None, model=None, **kwargs):
        # lazy: optional (qlora extra)
        from bitsandbytes import functional as F
        from torch import nn

        config = self.hf_quantizer.quantization_config
        result = {}
        for param_name, value in input_dict.items():
            value = value[0] if isinstance(value, list) else value
            if not is_expert_stack(model, param_name):
                result.update(
                    super().convert({param_name: value}, full_layer_name=full_layer_name, model=model, **kwargs)
                )
                continue
            packed, state = F.quantize_4bit(
                value,
                compress_statistics=config.bnb_4bit_use_double_quant,
                quant_type=config.bnb_4bit_quant_type,
                quant_storage=config.bnb_4bit_quant_storage,
            )
            self.hf_quantizer.expert_states[param_name] = state
            get_module_from_name(model, param_name)[0]._is_hf_initialized = True
            result[param_name] = nn.Parameter(packed, requires_grad=False)
        return result


@register_quantizer(QUANT_METHOD)
class ExpertsBnb4BitHfQuantizer(Bnb4BitHfQuantizer):
    """transformers' bitsandbytes 4-bit quantizer, expert stacks included (module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.expert_states = {}

    def param_needs_quantization(self, model, param_name: str, **kwargs) -> bool:
        if is_expert_stack(model, param_name):
            return not any(skip in param_name for skip in (self.modules_to_not_convert or []))
        return super().param_needs_quantization(model, param_name, **kwargs)

    def preprocess_model(self, model, **kwargs):
        super().preprocess_model(model, **kwargs)
        model.quantization_method = QuantizationMethod.BITS_AND_BYTES  # what TRL, PEFT and the Trainer check

    def get_quantize_ops(self):
        return _QuantizeExpertsToo(self)

    def _process_model_after_weight_loading(self, model, **kwargs):
        # lazy: optional (qlora extra)
        from bitsandbytes.nn.parametrize import replace_parameter_4bit_prequantized

        for param_name, state in self.expert_states.items():
            module, name = get_module_from_name(model, param_name)
            replace_parameter_4bit_prequantized(module, name, state.as_dict(packed=True), getattr(module, name).device)
        self.expert_states.clear()
        return super()._process_model_after_weight_loading(model, **kwargs)


def experts_aware(config: BitsAndBytesConfig | None) -> BitsAndBytesConfig | None:
    """The recipe's 4-bit config with expert stacks quantized too; other configs (8-bit, none) unchanged."""
    if config is None or not config.load_in_4bit:
        return config
    return ExpertsBitsAndBytesConfig.from_bitsandbytes(config)


def expert_stack_dtypes(model) -> dict:
    """{name: storage dtype} of every fused expert stack; a quantized stack reports its packed storage (uint8)."""
    # lazy: the torch stack loads only when a model is touched
    from torch.nn.utils import parametrize

    stacks = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for pname, chain in module.parametrizations.items():
                stacks[f"{name}.{pname}"] = chain.original.dtype
        for pname, param in module.named_parameters(recurse=False):
            if param.dim() == 3:
                stacks[f"{name}.{pname}"] = param.dtype
    return stacks
