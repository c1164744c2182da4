"""Training throughput: plain TRL SFTTrainer defaults vs this repository's trainer, side by side.

    python bench/train_throughput.py --shape tiny --mode full --steps 6            # CPU, seconds
    python bench/train_throughput.py --shape llama-8b --mode lora --steps 30       # one GPU, random weights
    python bench/train_throughput.py --shape mixtral-8x7b --mode qlora --steps 20  # needs .[qlora]

Each variant runs in its own process on identical synthetic data (token ids with the length mix of
scan prompts, 256-1536 tokens, plus report completions, 128-768; completion-only loss), from the same
seed and the same random weights of the real architecture (nothing is downloaded). The table gives
tokens/s (non-padding tokens in the timed steps), peak memory, useful-FLOP utilisation (4N per token for
LoRA and QLoRA, 6N for full fine-tuning, N = parameters a token passes through) against --peak-tflops,
the ratio to TRL, and both losses on the first steps (same batches, so they must agree).

Variants: `trl` is SFTTrainer with its defaults (padded batches, sdpa, gradient checkpointing on every
layer, its collator, its loss); `secml` is SpecialistTrainer with the recipes' speed keys (`--secml-args`,
default: padding-free batches, `attn_implementation auto`, `checkpointed_layers auto`, `liger_kernels
auto`, and for full fine-tuning on a GPU the specialist recipe's 8-bit AdamW with bf16 stochastic
rounding). On a GPU, `checkpointed_layers auto` plans within `memory_limit_gib` = --memory-ratio (default
1.5) times TRL's measured peak, so the comparison is at a fixed memory bound, not at "all free memory".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    # name: (family, config kwargs)
    "tiny": (
        "llama",
        dict(
            vocab_size=2048,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
    ),
    "tiny-moe": (
        "mixtral",
        dict(
            vocab_size=2048,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
        ),
    ),
    "llama-1b": (
        "llama",
        dict(
            vocab_size=128256,
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            tie_word_embeddings=True,
        ),
    ),
    "llama-8b": (
        "llama",
        dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
        ),
    ),
    "mixtral-8x7b": (
        "mixtral",
        dict(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            num_local_experts=8,
            num_experts_per_tok=2,
        ),
    ),
}


def synthetic_rows(n: int, vocab: int, seed: int, scale: float) -> list[dict]:
    """Pre-tokenized prompt/completion rows with the scan length mix (scaled down for tiny shapes)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        p, c = int(rng.randint(256, 1536) * scale), int(rng.randint(128, 768) * scale)
        ids = [rng.randrange(3, vocab) for _ in range(p + c)]
        rows.append({"input_ids": ids, "completion_mask": [0] * p + [1] * c})
    return rows


def active_params(config, family: str) -> int:
    """Parameters one token passes through (MoE: the routed experts only), embeddings excluded."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    attn = h * h * 2 + h * kv * 2
    mlp = 3 * h * i * (config.num_experts_per_tok if family == "mixtral" else 1)
    return layers * (attn + mlp) + h * config.vocab_size  # + LM head


def _tokenizer(vocab: int):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


DEFAULT_SECML_ARGS = "--padding_free true --attn_implementation auto --checkpointed_layers auto --liger_kernels auto"
FULL_FT_GPU_ARGS = "--optim adamw_torch_8bit --optim_args bf16_stochastic_round=True"


def secml_keys(text: str, mode: str, cuda: bool) -> dict:
    """Recipe keys for the secml variant, typed exactly as a recipe types them."""
    from secml_recipes.train.recipe import check_overrides

    if mode == "full" and cuda and "--optim" not in text:
        text = f"{text} {FULL_FT_GPU_ARGS}"  # the specialist recipe's optimizer (bf16 weights only)
    return check_overrides(text.split(), "--secml-args")


def secml_settings(args, sft: dict, model, cuda: bool):
    """The secml variant's SFTConfig and settings, resolved by run_settings exactly as a recipe run resolves them."""
    from trl import SFTConfig

    from secml_recipes.train.attention import register
    from secml_recipes.train.recipe import DataArguments, SpeedArguments, recipe_dataclasses
    from secml_recipes.train.run_settings import detect_environment, resolve_run_settings

    keys = secml_keys(args.secml_args, args.mode, cuda)
    if cuda and args.peak_cap_gib and "memory_limit_gib" not in keys:
        keys["memory_limit_gib"] = args.peak_cap_gib  # checkpointed_layers: auto plans within this bound
    speed_fields = set(SpeedArguments.__dataclass_fields__)
    speed = SpeedArguments(**{k: v for k, v in keys.items() if k in speed_fields})
    training = SFTConfig(**sft, **{k: v for k, v in keys.items() if k not in speed_fields | {"attn_implementation"}})
    model_args = recipe_dataclasses()[1](
        model_name_or_path=args.shape, attn_implementation=keys.get("attn_implementation", "sdpa")
    )
    settings = resolve_run_settings(
        DataArguments(task="specialist", eval_split=None), model_args, training, speed, detect_environment()
    )
    if settings.attn_implementation == "varlen":
        register()
    model.set_attn_implementation(settings.attn_implementation)
    resolved = settings.training_arguments(training)
    resolved.model_init_kwargs = None  # the model is built here, not loaded
    return resolved, settings


def build_model(args, cuda: bool):
    """Random weights of the real architecture (4-bit for QLoRA), from the seed; nothing is downloaded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    family, kwargs = SHAPES[args.shape]
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(args.seed)
    config = (LlamaConfig if family == "llama" else MixtralConfig)(**kwargs, max_position_embeddings=4096)
    model_cls = LlamaForCausalLM if family == "llama" else MixtralForCausalLM
    if args.mode != "qlora":
        with torch.device("cuda" if cuda else "cpu"):
            return model_cls(config).to(dtype), config
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:  # bitsandbytes quantizes while loading
        model_cls(config).to(dtype).save_pretrained(tmp)
        return model_cls.from_pretrained(tmp, quantization_config=quant, dtype=dtype, device_map={"": 0}), config


def build_trainer(args, model, config, cuda: bool):
    """The variant's trainer on the synthetic rows: plain TRL with its defaults, or SpecialistTrainer."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from secml_recipes.train.trainers import SpecialistTrainer

    scale = 0.25 if args.shape.startswith("tiny") else 1.0
    dataset = Dataset.from_list(synthetic_rows(args.batch_size * (args.steps + 2), config.vocab_size, args.seed, scale))
    peft_config = None
    if args.mode in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
    sft = dict(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        max_length=4096,
        dataloader_num_workers=0,
        shuffle_dataset=False,
        train_sampling_strategy="sequential",
        learning_rate=1e-4 if args.mode != "full" else 1e-5,
        completion_only_loss=True,
        activation_checkpointing=True,
    )
    if not cuda:
        sft.update(use_cpu=True, bf16=False, activation_checkpointing=False)
    common = dict(
        model=model, train_dataset=dataset, processing_class=_tokenizer(config.vocab_size), peft_config=peft_config
    )
    if args.variant != "secml":
        return SFTTrainer(args=SFTConfig(**sft), **common)
    args_obj, settings = secml_settings(args, sft, model, cuda)
    return SpecialistTrainer(args=args_obj, run_settings=settings, **common)


def timed_training(trainer, cuda: bool, warmup: int, steps: int) -> tuple[float, float]:
    """Train; (non-padding tokens per second over the steps after `warmup`, peak memory in GiB)."""
    import torch
    from transformers import TrainerCallback

    real_tokens: list[int] = []
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        mask = batch.get("attention_mask")
        real_tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    warm = min(warmup, steps - 1)
    timed = stamps[-1] - (stamps[warm - 1] if warm > 0 else start)
    tokens = sum(real_tokens[warm : len(stamps)])
    if cuda:
        return tokens / timed, torch.cuda.max_memory_allocated() / 2**30
    import resource

    return tokens / timed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def worker(args) -> dict:
    import torch

    from secml_recipes.train.plan.activations import decoder_layers

    cuda = torch.cuda.is_available()
    model, config = build_model(args, cuda)
    trainer = build_trainer(args, model, config, cuda)
    tps, peak = timed_training(trainer, cuda, args.warmup, args.steps)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    flops_per_token = (6 if args.mode == "full" else 4) * active_params(config, SHAPES[args.shape][0])
    settings = {"attn_implementation": trainer.model.config._attn_implementation}
    if args.variant == "secml":  # the start-of-run table's values, attention already above
        settings.update({name: value for name, value, _ in trainer.run_settings.rows() if name != "attention"})
    ckpt = [getattr(m, "gradient_checkpointing", False) for m in decoder_layers(trainer.model)]
    settings["checkpointed layers"] = f"{sum(ckpt)} of {len(ckpt)}" if trainer.args.activation_checkpointing else "none"
    settings["liger"] = str(bool(trainer.args.use_liger_kernel))
    return {
        "variant": args.variant,
        "tokens_per_s": tps,
        "peak_gib": peak,
        "losses": losses,
        "settings": settings,
        "utilisation": (tps * flops_per_token / (args.peak_tflops * 1e12)) if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--mode", choices=["lora", "qlora", "full"], default="lora")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="measured bf16 matrix rate of the GPU")
    parser.add_argument("--variants", default="trl,secml")
    parser.add_argument(
        "--secml-args",
        default=DEFAULT_SECML_ARGS,
        help="recipe keys for the secml variant (default: the recipes' speed keys)",
    )
    parser.add_argument(
        "--memory-ratio",
        type=float,
        default=1.5,
        help="GPU: cap the secml variant's planned peak at this multiple of TRL's peak (0: no cap)",
    )
    parser.add_argument("--peak-cap-gib", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_variant(args, variant: str, trl_result: dict | None) -> dict | None:
    """One variant in its own process; its result, or None when it failed."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--out",
        out,
        "--shape",
        args.shape,
        "--mode",
        args.mode,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--peak-tflops",
        str(args.peak_tflops),
        f"--secml-args={args.secml_args}",
    ]
    if variant != "trl" and trl_result and args.memory_ratio and trl_result["device"] != "cpu":
        cmd += ["--peak-cap-gib", str(args.memory_ratio * trl_result["peak_gib"])]
    proc = subprocess.run(cmd, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if proc.returncode != 0:
        print(f"variant {variant} failed (exit {proc.returncode})", file=sys.stderr)
        return None
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    return result


def print_table(args, results: dict) -> None:
    base = results.get("trl")
    k = min(len(r["losses"]) for r in results.values())
    print(
        f"\nshape {args.shape}, mode {args.mode}, batch {args.batch_size}, {args.steps} steps "
        f"({args.warmup} untimed), device {next(iter(results.values()))['device']}"
    )
    print("| variant | tokens/s | ratio to TRL | peak GiB | utilisation | loss (first steps) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "n/a"
        util = f"{r['utilisation']:.1%}" if r["utilisation"] is not None else "n/a (CPU)"
        losses = ", ".join(f"{x:.4f}" for x in r["losses"][: min(k, 5)])
        print(f"| {name} | {r['tokens_per_s']:.1f} | {ratio} | {r['peak_gib']:.2f} | {util} | {losses} |")
    for name, r in results.items():
        print(f"{name}: " + ", ".join(f"{key}={value}" for key, value in r["settings"].items()))
    if base and "secml" in results:
        a, b = base["losses"][:k], results["secml"]["losses"][:k]
        worst = max(abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a, b))
        print(f"largest relative loss difference over the first {k} steps: {worst:.2e}")


def main() -> int:
    args = parse_args()
    if args.variant:  # worker process
        Path(args.out).write_text(json.dumps(worker(args)))
        return 0
    results = {}
    for variant in args.variants.split(","):
        result = run_variant(args, variant, results.get("trl"))
        if result is None:
            return 1
        results[variant] = result
    print_table(args, results)
    Path(os.environ.get("BENCH_RESULTS", "/dev/null")).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
