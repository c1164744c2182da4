"""Tiny stand-ins for the real hub models, built offline.

Tests, the smoke run and CI cannot download Llama-3.1-8B-Instruct or Mixtral-8x7B-Instruct. They get a
tiny Llama and a tiny Mixtral (2 experts) of the same architectures, with a BPE tokenizer trained here
on sys-scan-like text and carrying the same special tokens and chat templates as the real models, so
that every code path (rendering, masks, loss, LoRA targets, saving) runs exactly as in production.

    python -m secml_recipes.tiny --out models/tiny
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from .templates import llama31_stock_template, read_template

LLAMA_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>",
]
MIXTRAL_SPECIALS = ["<unk>", "<s>", "</s>"]


def tokenizer_training_texts(n_hosts: int = 24, seed: int = 0) -> Iterator[str]:
    """Text that looks like what the models will read and write: real and generated scans, enriched
    reports, tool episodes rendered as JSON."""
    from .data.episodes import build_episodes
    from .data.enrich import enrich_report
    from .data.generate import generate_reports
    from .data.fixtures import real_reports

    for report in list(real_reports()) + list(generate_reports(n_hosts, seed)):
        yield json.dumps(report, separators=(",", ":"))
        enriched = enrich_report(report)
        yield json.dumps(enriched, separators=(",", ":"))
        for episode in build_episodes(report, enriched, seed=seed, count=2):
            yield json.dumps(episode["messages"]) + json.dumps(json.loads(episode["tools"]))
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
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Byte-fallback pieces <0x00>..<0xFF> are ordinary vocabulary entries, as in sentencepiece models.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return Tokenizer.from_str(json.dumps(data))


def _save_tokenizer(tok: Tokenizer, out: Path, chat_template: str, **special) -> None:
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=chat_template, **special)
    hf.save_pretrained(out)
    # The templates add BOS themselves; GGUF converters read this flag (see stack-facts).
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["add_bos_token"] = False
    config["add_eos_token"] = False
    config_path.write_text(json.dumps(config, indent=2))


def build_tiny_models(out: str | Path, vocab_size: int = 2048, seed: int = 0) -> dict[str, Path]:
    """Write `llama/` and `mixtral/` under `out`: config, random weights, tokenizer, chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    out = Path(out)
    texts = list(tokenizer_training_texts(seed=seed))
    paths = {"llama": out / "llama", "mixtral": out / "mixtral"}

    llama_tok = train_tokenizer(texts, LLAMA_SPECIALS, vocab_size, unk=None)
    _save_tokenizer(
        llama_tok, paths["llama"], llama31_stock_template(),
        bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|finetune_right_pad_id|>",
    )
    mixtral_tok = train_tokenizer(texts, MIXTRAL_SPECIALS, vocab_size, unk="<unk>")
    _save_tokenizer(
        mixtral_tok, paths["mixtral"], read_template("mixtral_tools.jinja"),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>",
    )

    torch.manual_seed(seed)
    ltok = AutoTokenizer.from_pretrained(paths["llama"])
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(ltok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
        bos_token_id=ltok.bos_token_id, eos_token_id=ltok.eos_token_id, pad_token_id=ltok.pad_token_id,
        tie_word_embeddings=False, rope_theta=500000.0,
    ))
    llama.save_pretrained(paths["llama"])

    mtok = AutoTokenizer.from_pretrained(paths["mixtral"])
    mixtral = MixtralForCausalLM(MixtralConfig(
        vocab_size=len(mtok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
        num_local_experts=2, num_experts_per_tok=1, router_aux_loss_coef=0.02,
        bos_token_id=mtok.bos_token_id, eos_token_id=mtok.eos_token_id, tie_word_embeddings=False,
    ))
    mixtral.save_pretrained(paths["mixtral"])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models/tiny")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, path in build_tiny_models(args.out, args.vocab_size, args.seed).items():
        print(f"tiny {name}: {path}")


if __name__ == "__main__":
    main()
