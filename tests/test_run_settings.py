"""What a run will do, read from one table: the production recipes on a CPU, a GPU-like and an XLA machine, and on
described models (their chat family, template, end-of-turn and padding tokens, and the loss flags that follow)."""

import copy
import json

import pytest

from helpers import ROOT
from secml_recipes.train.recipe import load_recipe
from secml_recipes.train.run_settings import Environment, ModelChatFacts, RunSettingsError, resolve_run_settings

CPU = Environment("cpu", packages=frozenset({"torchao"}))
GPU = Environment(
    "cuda", cuda_capability=(9, 0), packages=frozenset({"flash_attn", "liger_kernel", "torchao"}), num_processes=8
)
XLA = Environment("xla", num_processes=8)
# Production recipes train in bf16, which this CPU-only machine refuses to even configure: the tables are read with
# bf16 off, everything else as the recipe says.
HERE = ["--use_cpu", "false", "--bf16", "false"]


def settings(env, recipe="full/specialist", *overrides):
    return resolve_run_settings(*load_recipe(ROOT / "recipes" / f"{recipe}.yaml", [*HERE, *overrides]), env)


def table(env, recipe="full/specialist", *overrides) -> dict[str, str]:
    return {name: value for name, value, _ in settings(env, recipe, *overrides).rows()}


def test_the_specialist_table_on_cpu_gpu_and_xla():
    cpu, gpu, xla = table(CPU), table(GPU), table(XLA)
    assert cpu["backend"] == "cpu, 1 process(es)" and gpu["backend"] == "cuda, 8 process(es)"
    assert xla["backend"] == "xla, 8 process(es)"
    for row in (cpu, gpu, xla):
        assert row["trainer"] == "SpecialistTrainer (completion_only_loss=True)"
        assert row["loss"] == "nll, secml path" and row["precision"] == "bfloat16 weights, no autocast"
    # Attention and batch shape: padding-free rows with a varlen kernel, except on XLA (static shapes).
    assert (cpu["attention"], gpu["attention"], xla["attention"]) == ("varlen", "flash_attention_2", "sdpa")
    assert (cpu["padding_free"], gpu["padding_free"], xla["padding_free"]) == ("on", "on", "off")
    assert cpu["batch"] == "2 rows, one flat row each x 8 accumulation x 1 process(es) = 16 per optimizer step"
    assert xla["batch"] == "2 padded rows x 8 accumulation x 8 process(es) = 128 per optimizer step"
    assert cpu["truncation"].startswith("keep_start at 8192 tokens")
    # Optimizer: torchao's 8-bit AdamW where torchao runs, plain AdamW on XLA. Liger only on the GPU.
    assert (cpu["optimizer"], gpu["optimizer"], xla["optimizer"]) == ("adamw_torch_8bit",) * 2 + ("adamw_torch",)
    assert (cpu["liger_kernels"], gpu["liger_kernels"], xla["liger_kernels"]) == ("off", "on", "off")
    # checkpointed_layers: auto is planned from free memory on the GPU only.
    assert cpu["checkpointing"] == xla["checkpointing"] == "every decoder layer"
    assert gpu["checkpointing"] == "auto: layers planned at train start within free memory"
    assert cpu["xla_buckets"] == gpu["xla_buckets"] == "-"
    assert xla["xla_buckets"] == "4 lengths planned from the data (multiples of 128)"
    assert cpu["evaluation"] == "on"


def test_the_table_says_why_and_is_saved_as_json():
    xla = settings(XLA)
    why = {name: reason for name, _, reason in xla.rows()}
    assert why["padding_free"].startswith("XLA: varying shapes would compile a graph each step")
    assert "no XLA path" in why["optimizer"]
    text = xla.table()
    assert text.splitlines()[0] == "run settings (secml_recipes.train.run_settings)"
    assert all(name in text for name, _, _ in xla.rows())
    saved = json.loads(json.dumps(xla.to_dict()))
    assert saved["backend"] == "xla" and saved["optim"] == "adamw_torch" and saved["table"][0][0] == "backend"


def test_the_generalist_table():
    gpu = table(GPU, "full/generalist")
    assert gpu["trainer"] == "GeneralistTrainer (assistant_only_loss=True)"
    cpu = settings(CPU, "full/generalist")
    assert cpu.optim == "adamw_torch_fused" and cpu.model_init_kwargs["attn_implementation"] == "varlen"


def test_resolving_changes_none_of_its_inputs():
    args = load_recipe(ROOT / "recipes/full/specialist.yaml", HERE)

    def state():
        return [a.to_dict() if hasattr(a, "to_dict") else copy.deepcopy(vars(a)) for a in args]

    before = state()
    resolved = resolve_run_settings(*args, XLA)
    assert state() == before
    training = resolved.training_arguments(args[2])
    assert training is not args[2] and not training.padding_free and args[2].padding_free


def test_use_cpu_wins_over_a_gpu_but_not_over_xla():
    # accelerate trains on XLA whenever torch_xla is importable, use_cpu or not: the table must say so.
    assert settings(GPU, "full/specialist", "--use_cpu", "true").backend == "cpu"
    assert settings(XLA, "full/specialist", "--use_cpu", "true").backend == "xla"


@pytest.mark.parametrize(
    "overrides, env, key",
    [
        (["--optim", "adamw_torch_8bit"], Environment("cuda", (9, 0)), "optim: adamw_torch_8bit needs the torchao"),
        (["--attn_implementation", "flash_attention_2"], CPU, "attn_implementation: flash_attention_2 needs"),
        (["--liger_kernels", "true"], CPU, "liger_kernels: true needs the liger-kernel"),
        (["--optim", "adamw_bnb_8bit"], XLA, "optim: adamw_bnb_8bit needs bitsandbytes"),
        (["--completion_only_loss", "false"], CPU, "completion_only_loss: the specialist trainer always trains"),
        (["--xla_bucket_count", "0"], XLA, "xla_bucket_count: must be at least 1"),
    ],
)
def test_what_cannot_run_fails_before_loading_with_one_line_naming_the_key(overrides, env, key):
    with pytest.raises(RunSettingsError) as err:
        settings(env, "full/specialist", *overrides)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_bf16_needs_an_ampere_gpu():
    data, model, training, speed = load_recipe(ROOT / "recipes/full/specialist.yaml", HERE)
    training.bf16 = True  # what the recipe says on a real GPU machine
    with pytest.raises(RunSettingsError, match="bf16: needs an Ampere"):
        resolve_run_settings(data, model, training, speed, Environment("cuda", (7, 5), frozenset({"torchao"})))


def test_xla_bucket_lengths_are_sorted():
    assert settings(XLA, "full/specialist", "--xla_bucket_lengths", "[4096, 1024, 2048, 1024]").bucket_lengths == (
        1024,
        2048,
        4096,
    )


# --- the model's chat format: family, template, end-of-turn and padding tokens, loss flags ------------------------

LLAMA31 = ModelChatFacts(
    "meta-llama/Llama-3.1-8B-Instruct",
    "llama",
    frozenset({"<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"}),
    has_chat_template=True,
)
MIXTRAL = ModelChatFacts(
    "mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral", frozenset({"<s>", "</s>", "<unk>"}), None, True
)
QWEN3 = ModelChatFacts(
    "Qwen/Qwen3-8B", "qwen3", frozenset({"<|im_start|>", "<|im_end|>", "<|endoftext|>"}), "<|endoftext|>"
)
# SmolLM2: a Llama network that speaks ChatML; no padding token of its own.
SMOLLM2 = ModelChatFacts("smollm2", "llama", frozenset({"<|im_start|>", "<|im_end|>", "<|endoftext|>"}), None, True)


def of_model(model, recipe="full/specialist", *overrides, env=CPU):
    return resolve_run_settings(*load_recipe(ROOT / "recipes" / f"{recipe}.yaml", [*HERE, *overrides]), env, model)


def rows(settings) -> dict[str, tuple[str, str]]:
    return {name: (value, why) for name, value, why in settings.rows()}


def test_the_family_decides_template_tokens_and_tool_calls_and_says_why():
    llama = rows(of_model(LLAMA31))
    assert llama["model_family"] == (
        "llama3 (Llama 3.x)",
        "detected from the tokenizer's chat tokens and model_type llama",
    )
    assert llama["chat_template"][0] == "llama3_tools.jinja" and "saved with the model" in llama["chat_template"][1]
    assert llama["end_of_turn"][0] == "<|eot_id|>" and llama["padding_token"][0] == "<|finetune_right_pad_id|>"
    assert "canonical JSON" in llama["tool_calls"][1]
    mixtral = of_model(MIXTRAL, "full/generalist")
    assert (mixtral.model_family, mixtral.chat_template) == ("mistral", "mixtral_tools.jinja")
    assert (mixtral.eos_token, mixtral.pad_token) == ("</s>", "<unk>")
    assert mixtral.tool_calls == "[TOOL_CALLS] then a JSON list of calls, with call ids"
    qwen = of_model(QWEN3, "qwen3/generalist")
    assert (qwen.model_family, qwen.eos_token, qwen.pad_token) == ("qwen3", "<|im_end|>", "<|endoftext|>")
    assert qwen.loss_flags == {"assistant_only_loss": True}
    smollm2 = of_model(SMOLLM2, "smoke/specialist")
    assert (smollm2.model_family, smollm2.pad_token) == ("chatml", "<|endoftext|>")
    # The end-of-turn reaches TRL through SFTConfig.eos_token; the template is applied to the tokenizer by sft.
    data, model, training, speed = load_recipe(ROOT / "recipes/full/specialist.yaml", HERE)
    resolved = of_model(LLAMA31).training_arguments(training)
    assert resolved.eos_token == "<|eot_id|>" and training.eos_token is None and resolved.chat_template_path is None
    saved = json.loads(json.dumps(of_model(QWEN3).to_dict()))
    assert (
        saved["model_family"] == "qwen3" and ["end_of_turn", "<|im_end|>", saved["why"]["eos_token"]] in saved["table"]
    )


def test_the_specialist_masks_by_generation_blocks_only_when_its_template_has_them(tmp_path):
    with_blocks = rows(of_model(QWEN3))["trainer"]
    assert with_blocks[0] == "SpecialistTrainer (completion_only_loss=True, assistant_only_loss=True)"
    assert "{% generation %} blocks also mask what follows the end-of-turn" in with_blocks[1]
    plain = tmp_path / "plain.jinja"
    plain.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    own = of_model(QWEN3, "full/specialist", "--chat_template_path", str(plain))
    assert own.chat_template == str(plain) and own.generation_blocks is False
    assert own.loss_flags == {"completion_only_loss": True} and own.why["chat_template"] == "chat_template_path"
    # The generalist trains assistant turns only: a template without generation blocks cannot do it.
    with pytest.raises(RunSettingsError, match=r"^chat_template_path: the generalist trains only assistant turns"):
        of_model(QWEN3, "full/generalist", "--chat_template_path", str(plain))


def test_recipe_keys_win_over_the_family():
    named = of_model(SMOLLM2, "full/specialist", "--model_family", "qwen2_5", "--pad_token", "<|im_end|>")
    assert (named.model_family, named.pad_token) == ("qwen2_5", "<|im_end|>")
    assert (
        named.why["model_family"] == "model_family in the recipe"
        and named.why["pad_token"] == "pad_token in the recipe"
    )
    assert of_model(QWEN3, "full/specialist", "--eos_token", "<|endoftext|>").eos_token == "<|endoftext|>"
    # Without a described model (a benchmark that builds its own), the chat rows stay unresolved.
    unread = rows(settings(CPU))
    assert unread["model_family"] == ("-", "the model was not read") and unread["chat_template"][0] == "the model's own"


@pytest.mark.parametrize(
    "model, overrides, key",
    [
        (
            ModelChatFacts("org/base", "gpt2", frozenset({"<|endoftext|>"})),
            [],
            "model_family: org/base: cannot tell its",
        ),
        (LLAMA31, ["--model_family", "qwen3"], "model_family: meta-llama/Llama-3.1-8B-Instruct: its tokenizer has no"),
        (QWEN3, ["--eos_token", "<|eot_id|>"], "eos_token: '<|eot_id|>' is not in the vocabulary of Qwen/Qwen3-8B"),
        (QWEN3, ["--pad_token", "<pad>"], "pad_token: '<pad>' is not in the vocabulary of Qwen/Qwen3-8B"),
        (QWEN3, ["--chat_template_path", "missing.jinja"], "chat_template_path: chat template not found"),
    ],
)
def test_a_model_the_recipe_does_not_fit_fails_before_loading(model, overrides, key):
    with pytest.raises(RunSettingsError) as err:
        of_model(model, "full/specialist", *overrides)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)
