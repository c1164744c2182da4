"""Deploy chain: merge correctness, GGUF round trip through transformers, verification and report fields,
and a broken artifact failing the command."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from secml_recipes.deploy import verify
from secml_recipes.deploy.gguf import DeployError, write_modelfile
from secml_recipes.deploy.merge import merge_adapter


@pytest.fixture(scope="module")
def random_adapter(tiny_models, tmp_path_factory):
    """A LoRA adapter with non-zero weights (init_lora_weights=False), so merging changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_models["mixtral"], dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_models["mixtral"]).save_pretrained(out)
    return out


def test_merged_model_equals_base_plus_adapter(tiny_models, random_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged_dir = merge_adapter(random_adapter, tmp_path / "merged", dtype="float32")
    ids = torch.tensor([[1, 5, 9, 200, 31, 77, 12, 3]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_models["mixtral"], dtype=torch.float32)
        plain = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, str(random_adapter)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()(ids).logits
    assert not torch.allclose(plain, with_adapter, atol=1e-3)  # the adapter does something
    torch.testing.assert_close(merged, with_adapter, rtol=1e-4, atol=1e-4)
    assert (merged_dir / "tokenizer.json").exists() and json.loads((merged_dir / "secml_merge.json").read_text())[
        "dtype"
    ] == "float32"


def test_merge_refuses_low_precision(random_adapter, tmp_path):
    with pytest.raises(ValueError, match="bfloat16 or float32"):
        merge_adapter(random_adapter, tmp_path / "m", dtype="float16")


@pytest.mark.slow
def test_gguf_round_trip_through_transformers(tiny_models, small_corpus, llama_cpp_source, tmp_path):
    from transformers import AutoTokenizer

    from secml_recipes.deploy.gguf import convert_to_gguf

    out = tmp_path / "gguf"
    held = verify.held_out_examples(
        AutoTokenizer.from_pretrained(tiny_models["llama"]), str(small_corpus), "specialist", 2, 128
    )
    reference, _ = verify.hf_logits(tiny_models["llama"], held)
    f32 = convert_to_gguf(tiny_models["llama"], out / "tiny-f32.gguf", "f32")
    logits, _ = verify.hf_logits(out, held, gguf_file=f32.name)
    m = verify.compare_logits(reference, logits, held)
    assert m["top1_agreement"] == 1.0 and m["max_logit_diff"] < 1e-3 and m["kl_divergence"] < 1e-6
    q8 = convert_to_gguf(tiny_models["llama"], out / "tiny-q8_0.gguf", "q8_0")
    m8 = verify.compare_logits(reference, verify.hf_logits(out, held, gguf_file=q8.name)[0], held)
    assert m8["top1_agreement"] > 0.9 and m8["finite"] and q8.stat().st_size < f32.stat().st_size
    assert m8["perplexity"] == pytest.approx(m8["perplexity_source"], rel=0.1)


def test_compare_logits_fields_and_known_values():
    held = verify.HeldOut(ids=[[0, 1, 2]], completion=[[False, True, True]])
    s = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32))
    m = verify.compare_logits([s], [s.copy()], held)
    assert m["top1_agreement"] == 1.0 and m["kl_divergence"] == pytest.approx(0, abs=1e-9) and m["max_logit_diff"] == 0
    # tokens 1 and 2 are completion tokens: predicted at positions 0 (p=0.2) and 1 (p=0.1)
    assert m["perplexity"] == pytest.approx(np.exp(-(np.log(0.2) + np.log(0.1)) / 2), rel=1e-6)
    flipped = s[:, ::-1].copy()
    bad = verify.compare_logits([s], [flipped], held)
    assert bad["top1_agreement"] < 1 and bad["kl_divergence"] > 0.1
    assert verify.check(bad, "x q4", min_top1=0.9, max_kl=0.05)
    nan = verify.compare_logits([s], [np.full_like(s, np.nan)], held)
    assert not nan["finite"] and "non-finite" in verify.check(nan, "x", 0.0, 10.0)[0]


def test_a_flip_at_a_near_tie_is_not_a_broken_artifact_but_a_decisive_flip_is():
    held = verify.HeldOut(ids=[[0, 1, 2, 0]], completion=[[False, True, True, True]])
    # Position 0 is a near-tie (0.505 vs 0.495: 0.02 nats apart); positions 1-3 are decisive.
    s = np.log(np.array([[0.505, 0.495, 1e-6], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]], dtype=np.float64))
    near_tie = s.copy()
    near_tie[0] = np.log([0.495, 0.505, 1e-6])
    m = verify.compare_logits([s], [near_tie], held)
    assert m["top1_agreement"] == 0.75 and m["decisive_positions"] == 3 and m["decisive_top1_agreement"] == 1.0
    assert verify.check(m, "x q8_0", min_top1=0.97, max_kl=0.05) == []
    decisive = s.copy()
    decisive[2] = np.log([0.1, 0.8, 0.1])
    m = verify.compare_logits([s], [decisive], held)
    assert m["decisive_top1_agreement"] == pytest.approx(2 / 3)
    (problem,) = verify.check(m, "x q8_0", min_top1=0.97, max_kl=10.0)
    assert "0.667 < 0.97 on the 3 positions where the source is decisive (all positions: 0.750)" in problem
    # The margin is the recipe's to set: 0 counts every position.
    assert verify.compare_logits([s], [near_tie], held, decisive_margin=0.0)["decisive_top1_agreement"] == 0.75


def test_modelfiles_carry_the_training_chat_format(tmp_path):
    llama = write_modelfile(tmp_path / "specialist-q4_K_M.gguf", "llama", "You are secml.")
    text = llama.read_text()
    assert text.startswith("FROM ./specialist-q4_K_M.gguf") and "<|start_header_id|>" in text
    assert 'PARAMETER stop "<|eot_id|>"' in text and 'SYSTEM """You are secml."""' in text
    mixtral = write_modelfile(tmp_path / "generalist-q8_0.gguf", "mixtral").read_text()
    assert "[AVAILABLE_TOOLS]" in mixtral and "[TOOL_CALLS]" in mixtral and 'PARAMETER stop "</s>"' in mixtral
    with pytest.raises(DeployError):
        write_modelfile(tmp_path / "x.gguf", "gpt2")


@pytest.mark.slow
def test_quantize_command_reports_and_fails_broken_artifacts(
    tiny_models, small_corpus, llama_cpp_source, tmp_path, monkeypatch, capsys
):
    """The whole `quantize` flow for GGUF f16 with transformers standing in for llama.cpp's client (CI has no
    compiled llama.cpp); then the same with a client returning garbage must fail the command."""
    import shutil

    from secml_recipes.deploy import quantize

    models = tmp_path / "models"
    shutil.copytree(tiny_models["llama"], models / "specialist_model")
    (models / "specialist_model" / "secml_recipe.json").write_text('{"corpus": {"max_prompt_chars": 2500}}')
    recipe = tmp_path / "q.yaml"
    recipe.write_text(
        f"corpus: {small_corpus}\nmodels_dir: {models}\nverify_samples: 2\nverify_max_tokens: 128\n"
        "models:\n  - name: specialist\n    source: "
        + str(models / "specialist_model")
        + "\n    family: llama\n    formats: [gguf]\n    gguf_types: [f16]\n"
    )
    monkeypatch.setattr(
        verify,
        "llama_cpp_logits",
        lambda path, held: verify.hf_logits(Path(path).parent, held, gguf_file=Path(path).name),
    )
    assert quantize.main([str(recipe)]) == 0
    report = json.loads((models / "specialist-quant-report.json").read_text())
    art = report["artifacts"]["f16:llama.cpp"]
    for key in (
        "top1_agreement",
        "kl_divergence",
        "max_logit_diff",
        "perplexity",
        "perplexity_source",
        "bytes",
        "load_seconds",
        "ok",
        "modelfile",
    ):
        assert key in art
    assert art["ok"] and report["artifacts"]["f16:transformers"]["ok"]
    assert (models / "specialist-gguf" / "Modelfile.f16").exists()
    from secml_recipes.use.triage import trained_part_size  # the training record travels with the GGUF

    assert trained_part_size(models / "specialist-gguf" / "specialist-f16.gguf")[0] == 2500
    assert "| specialist | f16 |" in capsys.readouterr().out

    # Without a CUDA GPU a recipe with gptq_only_on_cuda deploys the GGUF files and says where GPTQ runs.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu_only = tmp_path / "q-gpu-only.yaml"
    gpu_only.write_text(
        recipe.read_text().replace("formats: [gguf]", "formats: [gptq, gguf]") + "gptq_only_on_cuda: true\n"
    )
    assert quantize.main([str(gpu_only)]) == 0
    assert "GPTQ: skipped, no CUDA GPU here" in capsys.readouterr().out
    report = json.loads((models / "specialist-quant-report.json").read_text())
    assert "gptq" in report["skipped"] and not (models / "specialist-gptq").exists()

    def garbage(path, held):
        logits, load = verify.hf_logits(Path(path).parent, held, gguf_file=Path(path).name)
        return [np.random.default_rng(0).normal(size=x.shape).astype(np.float32) for x in logits], load

    monkeypatch.setattr(verify, "llama_cpp_logits", garbage)
    assert quantize.main([str(recipe)]) == 1
    assert "BROKEN ARTIFACT" in capsys.readouterr().err


def test_quantize_recipe_errors_name_the_entry(tmp_path, capsys):
    from secml_recipes.deploy import quantize

    recipe = tmp_path / "q.yaml"
    recipe.write_text("models:\n  - name: a\n    source: x\n    gguf_typs: [f16]\n")
    assert quantize.main([str(recipe)]) == 2
    assert "models[0]: unknown key 'gguf_typs'; did you mean 'gguf_types'" in capsys.readouterr().err


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (make llama-cpp builds it)",
)
@pytest.mark.slow
def test_llama_cpp_generator_matches_transformers_greedy(tiny_models, llama_cpp_source, tmp_path):
    """The evaluation's two runtimes give the same greedy continuation for the same f32 GGUF."""
    from secml_recipes.deploy.gguf import convert_to_gguf
    from secml_recipes.use.generation import load_generator

    f32 = convert_to_gguf(tiny_models["llama"], tmp_path / "tiny-f32.gguf", "f32")
    msgs = [{"role": "user", "content": '{"meta":{"hostname":"web-01"},"results":[]}'}]
    hf = load_generator(str(tiny_models["llama"]))
    cpp = load_generator(str(f32), backend="llama_cpp", tokenizer_path=str(tiny_models["llama"]))
    assert cpp.render(msgs) == hf.render(msgs)
    a, b = hf.generate([hf.render(msgs)], 12)[0], cpp.generate([cpp.render(msgs)], 12)[0]
    assert a == b and cpp.stats["generated_tokens"] > 0


def test_gguf_carries_the_training_template_and_end_of_turn(tiny_architectures, llama_cpp_source, tmp_path):
    """llama.cpp renders the GGUF's tokenizer.chat_template and stops at its eos: after conversion these are the
    family's training template and end-of-turn token (here a ChatML Llama, like SmolLM2)."""
    import shutil

    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from secml_recipes.deploy.gguf import convert_to_gguf, gguf_chat_template
    from secml_recipes.families import get_family

    family = get_family("chatml")
    model = tmp_path / "model"
    shutil.copytree(tiny_architectures["chatml_llama"], model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = family.chat_template()
    tok.save_pretrained(model)
    path = convert_to_gguf(model, tmp_path / "m-f32.gguf", "f32")
    assert gguf_chat_template(path) == family.chat_template()
    fields = GGUFReader(str(path)).fields
    eos = fields["tokenizer.ggml.eos_token_id"]
    assert int(eos.parts[eos.data[0]][0]) == tok.convert_tokens_to_ids(family.end_of_turn)
    bos = fields.get("tokenizer.ggml.add_bos_token")  # the template writes what the prompt needs
    assert bos is None or not bool(bos.parts[bos.data[0]][0])
