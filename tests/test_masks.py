"""Labels, token by token: only the specialist's completion and the generalist's assistant turns are trained."""

import json

import pytest
import torch

from helpers import make_trainer
from secml_recipes.families import canonical_conversation, get_family
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples

SEQUENTIAL = ("--train_sampling_strategy", "sequential", "--shuffle_dataset", "false", "--padding_free", "false")


def _specialist_rows(n=2):
    report = next(real_reports())
    return [{k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(report, "fixture", 3000)[:n]]


def test_specialist_labels_are_exactly_the_completion_and_eot(tiny_models, tmp_path):
    rows = _specialist_rows(2)
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "16384",
    )
    tok = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    for i, row in enumerate(rows):
        prompt_ids = tok.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        full_ids = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
        ids, labels, attn = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        n = int(attn.sum())
        assert ids[:n].tolist() == full_ids
        expected = [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :] + [-100] * (len(ids) - n)
        assert labels.tolist() == expected
        trained = tok.decode([t for t in labels.tolist() if t != -100])
        assert trained == row["completion"][0]["content"] + "<|eot_id|>"
        assert json.loads(trained[: -len("<|eot_id|>")])["version"] == "1.0"  # sys-scan-agent EnrichedOutput


def _assistant_char_spans(tok, messages, tools):
    """Character spans of each assistant turn in the full render, found by rendering prefixes: the text an
    assistant turn adds after the render of everything before it."""
    spans = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:k], tools=tools, tokenize=False)
        after = tok.apply_chat_template(messages[: k + 1], tools=tools, tokenize=False)
        assert after.startswith(before)
        spans.append((len(before), len(after)))
    return spans


@pytest.mark.parametrize("which", ["episode_with_tools", "parallel_episode"])
def test_generalist_labels_cover_assistant_turns_only(tiny_models, tmp_path, request, which):
    episode = request.getfixturevalue(which)
    row = {"messages": episode["messages"], "tools": episode["tools"]}
    assert sum(1 for m in row["messages"] if m.get("tool_calls")) >= 1
    trainer = make_trainer(
        "generalist",
        tiny_models["mixtral"],
        [row],
        tmp_path,
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "1",
        "--max_length",
        "16384",
    )
    tok = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()

    messages, tools = canonical_conversation(row["messages"], row["tools"])  # what the trainer renders
    text = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    spans = _assistant_char_spans(tok, messages, tools)
    for pos, (start, end) in enumerate(enc["offset_mapping"]):
        in_assistant = any(s <= start and end <= e for s, e in spans)
        assert (labels[pos] != -100) == in_assistant, (pos, tok.decode([ids[pos]]))
    # Each assistant turn ends with its end token </s>, trained; tool results, user and system are not.
    trained_text = tok.decode([t for t in labels if t != -100], skip_special_tokens=False)
    assert trained_text.count("</s>") == sum(1 for m in row["messages"] if m["role"] == "assistant")
    assert "[TOOL_CALLS]" in trained_text and "[TOOL_RESULTS]" not in trained_text
    assert "[INST]" not in trained_text and "secml, a Linux host security analyst" not in trained_text


def test_mixtral_template_renders_the_same_for_training_and_inference(tiny_models, episode_with_tools):
    """Inference renders the conversation so far and lets the model continue; each assistant turn in the
    training render must be exactly such a continuation, and the saved tokenizer carries the same template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["mixtral"])
    assert tok.chat_template == get_family("mistral").chat_template()
    messages, tools = canonical_conversation(episode_with_tools["messages"], episode_with_tools["tools"])
    full = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    for k, m in enumerate(messages):
        if m["role"] == "assistant":
            prompt = tok.apply_chat_template(messages[:k], tools=tools, tokenize=False, add_generation_prompt=True)
            assert full.startswith(prompt)
    assert full.startswith("<s>[AVAILABLE_TOOLS] [")
    assert '[TOOL_CALLS] [{"name": "check_process_details", "arguments": {"pid":' in full
    assert '[TOOL_RESULTS] {"call_id": "call_1", "content": ' in full


def test_mixtral_template_plain_chat_matches_stock_v01_format(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["mixtral"])
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "scan?"},
    ]
    assert tok.apply_chat_template(msgs, tokenize=False) == "<s>[INST] hi [/INST]hello</s>[INST] scan? [/INST]"


def test_parallel_calls_render_in_one_assistant_turn(tiny_models, parallel_episode):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["mixtral"])
    text = tok.apply_chat_template(
        parallel_episode["messages"], tools=json.loads(parallel_episode["tools"]), tokenize=False
    )
    call_turn = text.split("[TOOL_CALLS] ")[1].split("</s>")[0]
    assert json.loads(call_turn)[0]["name"] == json.loads(call_turn)[1]["name"] == "hash_binary"
    assert text.count("[TOOL_RESULTS]") == sum(1 for m in parallel_episode["messages"] if m["role"] == "tool")


def test_padding_is_never_trained(tiny_models, tmp_path):
    rows = _specialist_rows(2)
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "16384",
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert torch.all(batch["labels"][batch["attention_mask"] == 0] == -100)
    assert int((batch["attention_mask"] == 0).sum()) > 0


def test_padding_free_batches_train_the_same_tokens(tiny_models, tmp_path):
    """The GPU fast path (padding-free, TRL's flattening collator) keeps exactly the padded path's labels."""
    rows = _specialist_rows(2)
    padded = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "a",
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "16384",
    )
    flat = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "b",
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--padding_free",
        "true",
        "--max_length",
        "null",
    )
    p, f = next(iter(padded.get_train_dataloader())), next(iter(flat.get_train_dataloader()))
    real = [p["labels"][i][p["attention_mask"][i] == 1] for i in range(2)]
    assert torch.equal(torch.cat(real), f["labels"][0])
    assert torch.equal(f["position_ids"][0], torch.cat([torch.arange(len(r)) for r in real]))


@pytest.mark.parametrize("padding_free", ["false", "true"])
def test_keep_end_truncation_keeps_the_end_of_each_row(tiny_models, tmp_path, padding_free):
    """`truncation_mode: keep_end` (TRL's own truncation, also for padding-free rows): a limit inside the prompt
    keeps each row's last tokens, the trained completion among them; keep_start would leave nothing to train."""
    rows = _specialist_rows(2)
    common = (*SEQUENTIAL[:4], "--padding_free", padding_free)
    full = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "a", *common, "--max_length", "16384")
    with pytest.warns(FutureWarning, match="keep_end"):  # TRL 1.16 deprecates keep_end; it still works
        cut = make_trainer(
            "specialist",
            tiny_models["llama"],
            rows,
            tmp_path / "b",
            *common,
            "--max_length",
            "64",
            "--truncation_mode",
            "keep_end",
            "--keep_truncated_rows",
            "true",
        )
    assert len(cut.train_dataset) == len(rows) and cut.args.max_length == 64
    for whole, kept in zip(full.train_dataset, cut.train_dataset):
        assert kept["input_ids"] == whole["input_ids"][-64:] and kept["labels"] == whole["labels"][-64:]
    # By default a row whose trained part is cut is dropped; here that is every row, which is refused.
    with pytest.raises(ValueError, match="every one of the 2 train rows has a trained part longer than 64"):
        make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "c", *common, "--max_length", "64")
