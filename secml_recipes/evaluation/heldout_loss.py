"""Held-out loss: did training lower the model's cross-entropy on the reference answers it never saw?

Generation metrics need a whole answer right (a JSON report that parses, a tool call that validates); a small model
trained for minutes often gets the form but not all of it. The mean cross-entropy of the reference's trained
tokens (the report for the specialist, the assistant turns and tool calls for the generalist, masked as training
masks them: `{% generation %}` blocks of the trained chat template) measures what was learned before that: the
same tokens are scored for the trained model and for its untrained base, rendered by the trained tokenizer.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from secml_recipes.model_folders import model_and_adapter


def _ids_and_mask(tokenizer, messages: list[dict], tools: list[dict] | None, prompt_messages: list[dict] | None):
    """Token ids of the conversation and the mask of the tokens training learns from."""
    rendered = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(rendered["input_ids"])
    mask = list(rendered.get("assistant_masks") or [])
    if prompt_messages is not None:  # prompt/completion rows: everything after the prompt is the completion
        prompt = tokenizer.apply_chat_template(
            prompt_messages, tools=tools, tokenize=True, return_dict=True, add_generation_prompt=True
        )["input_ids"]
        completion = [0] * len(prompt) + [1] * (len(ids) - len(prompt))
        mask = [a & c for a, c in zip(mask, completion)] if any(mask) else completion
    return ids, mask


@torch.no_grad()
def heldout_loss(
    model_path: str, adapter_path: str | None, tokenizer_path: str, rows: list[dict], max_tokens: int = 8192
) -> dict:
    """{'heldout_loss': mean nats per trained token, 'heldout_perplexity', 'heldout_tokens'} over `rows`: each
    {'messages', 'tools', 'prompt'} (prompt: the prompt messages of a prompt/completion row, else None)."""
    # lazy: the torch stack loads only when a model is touched
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if adapter_path:
        # lazy: the torch stack loads only when a model is touched
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path)
    model.eval()
    total, count = 0.0, 0
    for row in rows:
        ids, mask = _ids_and_mask(tokenizer, row["messages"], row.get("tools"), row.get("prompt"))
        ids, mask = ids[:max_tokens], mask[:max_tokens]
        if sum(mask[1:]) == 0:
            continue
        input_ids = torch.tensor([ids])
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        targets = input_ids[0, 1:]
        keep = torch.tensor(mask[1:], dtype=torch.bool)
        losses = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
        total, count = total + losses.item(), count + int(keep.sum())
    del model
    if not count:
        return {"heldout_loss": None, "heldout_perplexity": None, "heldout_tokens": 0}
    mean = total / count
    return {"heldout_loss": mean, "heldout_perplexity": math.exp(mean), "heldout_tokens": count}


def scoring_source(model_path: str, adapter_path: str | None) -> tuple[str, str | None] | None:
    """(model, adapter) to load in transformers for a variant, or None for a GGUF file (no weights to score)."""
    return None if Path(model_path).is_file() else model_and_adapter(model_path, adapter_path)
