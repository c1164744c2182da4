"""Check an artifact against the model it came from, in a real client, on held-out text.

Both sides score the same token ids; we report top-1 agreement, mean KL(source || artifact), the
largest absolute logit difference, perplexity of each on the held-out completion tokens, file size and
load time. A non-finite logit, a KL over the recipe's ceiling or a decisive top-1 agreement under its floor
fails the artifact.

Decisive agreement counts only the positions where the source prefers its top token over the runner-up by
at least `decisive_margin` nats. At a near-tie any rounding flips the argmax (an f16 conversion alone flips
positions under 0.05 nats), so raw agreement measures how flat the model's distributions are as much as how
good the artifact is; KL and perplexity already weigh those positions by what they cost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secml_recipes.corpus.tarball import read_split


@dataclass
class HeldOut:
    """Token ids of held-out examples and, per position, whether it is a completion token."""

    ids: list[list[int]]
    completion: list[list[bool]]


def held_out_examples(tokenizer, corpus: str, task: str, n: int, max_tokens: int) -> HeldOut:
    """Rendered test-split examples (specialist prompt+completion, or generalist episodes)."""
    rows, _ = read_split(corpus, task, "test", verbose=False)
    if not rows:
        rows, _ = read_split(corpus, task, "train", verbose=False)
    ids, masks = [], []
    for row in rows[:n]:
        if task == "specialist":
            prompt = tokenizer.apply_chat_template(
                row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)[
                "input_ids"
            ]
            mask = [i >= len(prompt) for i in range(len(full))]
            # Keep the end of the prompt and the start of the completion inside the window.
            start = max(0, min(len(prompt) - max_tokens // 2, len(full) - max_tokens))
        else:
            out = tokenizer.apply_chat_template(
                row["messages"],
                tools=json.loads(row["tools"]),
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            full, mask = out["input_ids"], [bool(m) for m in out["assistant_masks"]]
            first = mask.index(True) if True in mask else 0
            start = max(0, min(first - max_tokens // 2, len(full) - max_tokens))
        ids.append(full[start : start + max_tokens])
        masks.append(mask[start : start + max_tokens])
    if not ids:
        raise ValueError(f"{corpus}: no {task} examples to verify with")
    return HeldOut(ids, masks)


def hf_logits(model_dir: str | Path, held: HeldOut, gguf_file: str | None = None) -> tuple[list[np.ndarray], float]:
    """Logits from transformers (a folder, or a GGUF file through transformers' loader), and load seconds."""
    # lazy: the torch stack loads only when a model is touched
    import torch
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    kwargs = {"dtype": torch.float32}
    if gguf_file:
        kwargs["gguf_file"] = str(gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs).eval()
    load = time.perf_counter() - t0
    out = []
    with torch.no_grad():
        for ids in held.ids:
            out.append(model(torch.tensor([ids])).logits[0].float().numpy())
    return out, load


def llama_cpp_logits(gguf_file: str | Path, held: HeldOut) -> tuple[list[np.ndarray], float]:
    """Logits from llama.cpp itself (llama-cpp-python), the only trustworthy check for Mixtral GGUFs."""
    # lazy: optional, built by `make llama-cpp`
    from llama_cpp import Llama

    t0 = time.perf_counter()
    n_ctx = max(len(i) for i in held.ids) + 8
    llm = Llama(model_path=str(gguf_file), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2, seed=0)
    load = time.perf_counter() - t0
    out = []
    for ids in held.ids:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    del llm
    return out, load


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """float64 log-probabilities; torch's kernel (threaded) instead of numpy's exp over a (positions x vocab) array."""
    import torch  # lazy: the torch stack loads only when a model is touched

    return torch.from_numpy(np.ascontiguousarray(x)).double().log_softmax(-1).numpy()


DECISIVE_MARGIN = 0.1  # nats between the source's top-1 and runner-up log-probabilities


def compare_logits(
    source: list[np.ndarray], artifact: list[np.ndarray], held: HeldOut, decisive_margin: float = DECISIVE_MARGIN
) -> dict:
    """Agreement metrics between two models' logits on the same tokens."""
    agree = total = 0
    decisive_agree = decisive_total = 0
    kls, max_diff = [], 0.0
    nll_src, nll_art, n_completion = 0.0, 0.0, 0
    finite = True
    for s, a, ids, mask in zip(source, artifact, held.ids, held.completion):
        v = min(s.shape[-1], a.shape[-1])
        s, a = s[:, :v], a[:, :v]
        finite &= bool(np.isfinite(a).all())
        if not np.isfinite(a).all():
            continue
        same = s.argmax(-1) == a.argmax(-1)
        agree += int(same.sum())
        total += s.shape[0]
        ls, la = _log_softmax(s), _log_softmax(a)
        best_two = np.partition(ls, -2, axis=-1)[:, -2:]
        decisive = best_two[:, 1] - best_two[:, 0] >= decisive_margin
        decisive_agree += int((same & decisive).sum())
        decisive_total += int(decisive.sum())
        kls.append(float((np.exp(ls) * (ls - la)).sum(-1).mean()))
        max_diff = max(max_diff, float(np.abs(s - a).max()))
        for t in range(len(ids) - 1):  # position t predicts token t+1
            if mask[t + 1]:
                nll_src -= ls[t, ids[t + 1]]
                nll_art -= la[t, ids[t + 1]]
                n_completion += 1
    return {
        "finite": finite,
        "top1_agreement": agree / total if total else 0.0,
        "decisive_top1_agreement": decisive_agree / decisive_total if decisive_total else 0.0,
        "decisive_positions": decisive_total,
        "decisive_margin": decisive_margin,
        "kl_divergence": float(np.mean(kls)) if kls else float("inf"),
        "max_logit_diff": max_diff,
        "perplexity_source": float(np.exp(nll_src / n_completion)) if n_completion else None,
        "perplexity": float(np.exp(nll_art / n_completion)) if n_completion else None,
        "positions": total,
        "completion_tokens": n_completion,
    }


def check(metrics: dict, name: str, min_top1: float, max_kl: float) -> list[str]:
    """Reasons an artifact is broken (empty when it passes)."""
    problems = []
    if not metrics["finite"]:
        problems.append(f"{name}: non-finite logits")
    agreement = metrics.get("decisive_top1_agreement", metrics["top1_agreement"])
    if agreement < min_top1:
        problems.append(
            f"{name}: top-1 agreement {agreement:.3f} < {min_top1} on the "
            f"{metrics.get('decisive_positions', metrics['positions'])} positions where the source is decisive "
            f"(all positions: {metrics['top1_agreement']:.3f})"
        )
    if metrics["kl_divergence"] > max_kl:
        problems.append(f"{name}: KL divergence {metrics['kl_divergence']:.4f} > {max_kl}")
    return problems
