"""Tiny stand-ins for the real hub models, built offline.

Tests, the smoke run and CI cannot download Llama-3.1-8B-Instruct or Mixtral-8x7B-Instruct. They get a
tiny Llama and a tiny Mixtral (2 experts) of the same architectures, with a BPE tokenizer trained here
on sys-scan-like text and carrying the same special tokens and chat templates as the real models, so
that every code path (rendering, masks, loss, LoRA targets, saving) runs exactly as in production.

    python -m tests.harness.tiny --out models/tiny
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from secml_recipes import layout
from secml_recipes.families import get_family
from secml_recipes.families.templates import llama31_stock_template

LLAMA_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|python_tag|>",
    "<|finetune_right_pad_id|>",
]
MIXTRAL_SPECIALS = ["<unk>", "<s>", "</s>"]
CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_SPECIALS = CHATML_SPECIALS + ["<tool_call>", "</tool_call>", "<think>", "</think>"]
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
_SMALL = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=16384,
    tie_word_embeddings=False,
)
# Tiny stand-ins of the other supported families (docs/models.md): transformers config class, extra config keys,
# the tokenizer's special tokens and roles. Their tokenizers carry no chat template: the family supplies it.
TINY_ARCHITECTURES = {
    "qwen3": ("Qwen3Config", dict(head_dim=16), QWEN_SPECIALS, dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")),
    "qwen3_moe": (
        "Qwen3MoeConfig",
        dict(head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, router_aux_loss_coef=0.001),
        QWEN_SPECIALS,
        dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
    ),
    "qwen2_5": ("Qwen2Config", {}, QWEN_SPECIALS, dict(eos_token="<|im_end|>", pad_token="<|endoftext|>")),
    "gemma3": (
        "Gemma3TextConfig",
        dict(
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=64,
            layer_types=["sliding_attention", "full_attention"],
        ),
        GEMMA_SPECIALS,
        dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"),
    ),
    "chatml_llama": ("LlamaConfig", {}, CHATML_SPECIALS, dict(bos_token="<|im_start|>", eos_token="<|im_end|>")),
}


# BPE training time grows with the longest pre-tokenized word, and Metaspace(split=False) keeps a whole text as
# one word: a --hardening scan is ~800 kB, so texts are cut (the first 32k characters hold every key and form).
MAX_TEXT_CHARS = 32_000


def tokenizer_training_texts(n_hosts: int = 24, seed: int = 0) -> Iterator[str]:
    """Text that looks like what the models will read and write: real and generated scans, enriched
    reports, tool episodes rendered as JSON (each cut to MAX_TEXT_CHARS)."""
    from secml_recipes.corpus.episodes import build_episodes, plant_processes
    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.scan.generate import generate_reports
    from secml_recipes.teacher.enrich import enrich_report

    for report in list(real_reports()) + list(generate_reports(n_hosts, seed)):
        yield json.dumps(report, separators=(",", ":"))[:MAX_TEXT_CHARS]
        yield json.dumps(enrich_report(report), separators=(",", ":"))[:MAX_TEXT_CHARS]
        for episode in build_episodes(plant_processes(report, seed), seed=seed, count=3):
            yield json.dumps(episode["messages"]) + json.dumps(json.loads(episode["tools"]))
            # the analyst's prose as prose too, as a base model has seen language before any fine-tuning
            yield "\n".join(m["content"] for m in episode["messages"] if m["role"] == "assistant" and m["content"])
    yield "[INST] [/INST] [AVAILABLE_TOOLS] [/AVAILABLE_TOOLS] [TOOL_CALLS] [TOOL_RESULTS] [/TOOL_RESULTS]"
    yield "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nEnvironment: ipython\n"


def train_tokenizer(texts: Iterable[str], specials: list[str], vocab_size: int, unk: str | None) -> Tokenizer:
    """A sentencepiece-style BPE (Metaspace, byte fallback), the layout llama.cpp's converters read."""
    tok = Tokenizer(models.BPE(unk_token=unk, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([])
    # prepend_scheme="first", split=False: no stray space after special tokens (see stack-facts).
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # Byte-fallback pieces <0x00>..<0xFF> are ordinary vocabulary entries, as in sentencepiece models.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return Tokenizer.from_str(json.dumps(data))


def _save_tokenizer(tok: Tokenizer, out: Path, chat_template: str | None, **special) -> None:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    if chat_template is not None:
        hf.chat_template = chat_template
    hf.save_pretrained(out)
    # The templates add BOS themselves; GGUF converters read this flag (see stack-facts).
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["add_bos_token"] = False
    config["add_eos_token"] = False
    config_path.write_text(json.dumps(config, indent=2))


def pretrain_briefly(
    model, tokenizer, texts: list[str], steps: int, seq_len: int = 256, batch: int = 8, lr: float = 3e-3, seed: int = 0
) -> list[float]:
    """A few hundred next-token steps on scan text, so the stand-in is a base model that has seen the
    domain (as the real ones have seen language) rather than random weights that LoRA cannot move."""
    import torch

    ids = tokenizer("\n".join(texts), add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids[: (len(ids) // seq_len) * seq_len]).view(-1, seq_len)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        rows = data[torch.randint(0, data.size(0), (batch,), generator=gen)]
        loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def build_tiny_models(
    out: str | Path, vocab_size: int = 2048, seed: int = 0, pretrain_steps: int = 300
) -> dict[str, Path]:
    """Write `llama/` and `mixtral/` under `out`: config, random weights, tokenizer, chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    out = Path(out)
    texts = list(tokenizer_training_texts(seed=seed))
    # Base-model pretraining sees scans, enriched reports and episodes of other hosts (tokenizer seed).
    pretrain_texts = texts
    paths = {"llama": out / "llama", "mixtral": out / "mixtral"}

    llama_tok = train_tokenizer(texts, LLAMA_SPECIALS, vocab_size, unk=None)
    _save_tokenizer(
        llama_tok,
        paths["llama"],
        llama31_stock_template(),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
    )
    mixtral_tok = train_tokenizer(texts, MIXTRAL_SPECIALS, vocab_size, unk="<unk>")
    _save_tokenizer(
        mixtral_tok,
        paths["mixtral"],
        get_family("mistral").chat_template(),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )

    torch.manual_seed(seed)
    ltok = AutoTokenizer.from_pretrained(paths["llama"])
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(ltok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=16384,
            bos_token_id=ltok.bos_token_id,
            eos_token_id=ltok.eos_token_id,
            pad_token_id=ltok.pad_token_id,
            tie_word_embeddings=False,
            rope_theta=500000.0,
        )
    )
    pretrain_briefly(llama, ltok, pretrain_texts, pretrain_steps, seed=seed)
    llama.save_pretrained(paths["llama"])

    mtok = AutoTokenizer.from_pretrained(paths["mixtral"])
    mixtral = MixtralForCausalLM(
        MixtralConfig(
            vocab_size=len(mtok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=16384,
            num_local_experts=2,
            num_experts_per_tok=1,
            router_aux_loss_coef=0.02,
            bos_token_id=mtok.bos_token_id,
            eos_token_id=mtok.eos_token_id,
            tie_word_embeddings=False,
        )
    )
    pretrain_briefly(mixtral, mtok, pretrain_texts, pretrain_steps, seed=seed)
    mixtral.save_pretrained(paths["mixtral"])
    return paths


def build_tiny_architecture(out: str | Path, name: str, vocab_size: int = 1024, seed: int = 0) -> Path:
    """A tiny random model of architecture `name` (a key of TINY_ARCHITECTURES) with a tokenizer trained here
    that has the family's special tokens and no chat template (as a base model ships), written to `out`."""
    import torch
    import transformers

    config_name, extra, specials, roles = TINY_ARCHITECTURES[name]
    out = Path(out)
    tok = train_tokenizer(
        tokenizer_training_texts(n_hosts=4, seed=seed), specials, vocab_size, unk=roles.get("unk_token")
    )
    _save_tokenizer(tok, out, None, **roles)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    config = getattr(transformers, config_name)(
        vocab_size=len(hf_tok),
        **{**_SMALL, **extra},
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        bos_token_id=hf_tok.bos_token_id,
    )
    torch.manual_seed(seed)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(layout.tiny_models()))
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"also build random tiny {', '.join(TINY_ARCHITECTURES)} models (recipes/qwen3-tiny)",
    )
    args = parser.parse_args(argv)
    for name, path in build_tiny_models(args.out, args.vocab_size, args.seed, args.pretrain_steps).items():
        print(f"tiny {name}: {path}")
    for name in TINY_ARCHITECTURES if args.all else ():
        print(f"tiny {name}: {build_tiny_architecture(Path(args.out) / name, name, args.vocab_size, args.seed)}")


if __name__ == "__main__":
    main()
