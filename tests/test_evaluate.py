"""The whole evaluation on tiny models (numbers meaningless, every path runs): full model, adapter, baselines."""

import json
from pathlib import Path

import pytest

from helpers import ROOT
from secml_recipes.evaluation.evaluate import main


@pytest.fixture(scope="module")
def tiny_adapter(tiny_models, tmp_path_factory):
    """An (untrained) LoRA adapter on the tiny Mixtral, saved like a training run saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_models["mixtral"])
    model = get_peft_model(
        base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.05)
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_models["mixtral"]).save_pretrained(out)
    return out


def test_specialist_evaluation_writes_report_table_and_plots(tiny_models, small_corpus, tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(
            [
                str(ROOT / "recipes/tiny/eval-specialist.yaml"),
                "--model",
                str(tiny_models["llama"]),
                "--base_model",
                str(tiny_models["llama"]),
                "--dataset_path",
                str(small_corpus),
                "--max_samples",
                "2",
                "--max_prompt_chars",
                "20000",
                "--max_new_tokens",
                "16",
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "eval_report.json").read_text())
    # Free and constrained decoding side by side (tasks/constraints.py); the rule baseline decodes nothing.
    assert set(report["results"]) == {"model", "base", "rule", "model+constrained", "base+constrained"}
    assert report["timings"]["model+constrained"]["generated_tokens"] > 0
    assert (out / "predictions.constrained.jsonl").exists()
    assert report["sizes"]["examples"] >= 3 and report["sizes"]["real_report_examples"] >= 1
    assert report["data"]["manifest_sha256"] and report["models"]["model"]["base"]["config_sha256"]
    assert report["timings"]["model"]["generated_tokens"] > 0
    model, base = report["results"]["model"], report["results"]["base"]
    assert model["heldout_tokens"] == base["heldout_tokens"] > 0 and model["heldout_loss"] > 0  # the same tokens
    assert "heldout_loss" not in report["results"]["rule"]
    for key in (
        "json_parse_rate",
        "severity_accuracy",
        "risk_score_mae",
        "attack_f1",
        "correlation_f1",
        "action_coverage",
        "verdict_accuracy",
        "risk_level_accuracy",
        "harmful_action_rate",
        "judge_harmful_rate",
    ):
        assert key in report["results"]["model"]
    rule = report["results"]["rule"]  # lists every non-info finding with the scanner's severity, nothing more
    assert rule["severity_accuracy"] == rule["finding_recall"] and rule["schema_valid_rate"] == 1.0
    assert (out / "metrics.png").stat().st_size > 0 and (out / "summary.md").exists()
    assert "| json_parse_rate |" in capsys.readouterr().out


def test_generalist_evaluation_of_an_adapter_against_its_base(tiny_adapter, small_corpus, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                str(ROOT / "recipes/tiny/eval-generalist.yaml"),
                "--model",
                str(tiny_adapter),
                "--dataset_path",
                str(small_corpus),
                "--max_samples",
                "3",
                "--max_new_tokens",
                "24",
                "--max_steps",
                "2",
                "--output_dir",
                str(out),
                "--no-constrain",
            ]
        )
        == 0
    )
    report = json.loads((out / "eval_report.json").read_text())
    assert set(report["results"]) == {"model", "base"}  # --no-constrain: free decoding only
    assert report["models"]["model"]["adapter"]["files"]["adapter_config.json"] > 0
    assert report["results"]["model"]["episodes"] == 3
    # The adapter is untrained (LoRA B = 0): the model and its base score the reference turns identically.
    assert abs(report["results"]["model"]["heldout_loss"] - report["results"]["base"]["heldout_loss"]) < 1e-4
    assert (out / "trajectories.jsonl").read_text().count("\n") == 3


def test_missing_model_is_a_clear_error(small_corpus, tmp_path, capsys):
    assert (
        main(
            [
                str(ROOT / "recipes/tiny/eval-specialist.yaml"),
                "--model",
                str(tmp_path / "nope"),
                "--dataset_path",
                str(small_corpus),
            ]
        )
        == 2
    )
    assert "model not found" in capsys.readouterr().err


def test_the_llama_cpp_backend_hands_each_variant_its_gguf_and_trained_tokenizer(monkeypatch, tmp_path):
    """Model and base folders become (GGUF, tokenizer folder) pairs; a GGUF given as a file is used as it is."""
    from secml_recipes.evaluation import evaluate
    from secml_recipes.evaluation.evaluate import _as_gguf_variants

    calls = []

    def fake_as_gguf(model, adapter=None, qtype="f16"):
        calls.append((str(model), adapter))
        return f"{model}.f16.gguf", f"{adapter or model}"

    monkeypatch.setattr(evaluate, "as_gguf", fake_as_gguf)
    (tmp_path / "trained").mkdir()
    (tmp_path / "base").mkdir()
    variants = {
        "model": dict(model_path=str(tmp_path / "trained"), adapter_path=None, gguf_file=None),
        "base": dict(model_path=str(tmp_path / "base"), adapter_path=None, gguf_file=None),
    }
    out, sources = _as_gguf_variants(variants)
    assert out["model"] == dict(
        model_path=f"{tmp_path / 'trained'}.f16.gguf",
        adapter_path=None,
        gguf_file=None,
        backend="llama_cpp",
        tokenizer_path=str(tmp_path / "trained"),
    )
    assert out["base"]["model_path"] == f"{tmp_path / 'base'}.f16.gguf"
    assert sources["model"]["converted_from"]["model"]["path"] == str((tmp_path / "trained").resolve())
    assert calls == [(str(tmp_path / "trained"), None), (str(tmp_path / "base"), None)]


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("llama_cpp") is None or not (ROOT / ".cache/llama.cpp").exists(),
    reason="llama.cpp not built here (make llama-cpp)",
)
def test_specialist_evaluation_through_llama_cpp_converts_each_folder_once(
    tiny_models, small_corpus, tmp_path, monkeypatch
):
    from secml_recipes import layout

    monkeypatch.setattr(layout, "eval_gguf_cache", lambda: tmp_path / "gguf-cache")
    args = [
        str(ROOT / "recipes/tiny/eval-specialist.yaml"),
        "--model",
        str(tiny_models["llama"]),
        "--backend",
        "llama_cpp",
        "--base_model",
        str(tiny_models["llama"]),
        "--dataset_path",
        str(small_corpus),
        "--max_samples",
        "2",
        "--include_fixtures",
        "false",
        "--max_new_tokens",
        "8",
    ]
    assert main([*args, "--output_dir", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "eval_report.json").read_text())
    assert set(report["results"]) == {"model", "base", "rule", "model+constrained", "base+constrained"}
    assert report["models"]["model"]["base"]["path"].endswith("-f16.gguf")
    assert report["models"]["model"]["converted_from"]["model"]["path"] == str(tiny_models["llama"].resolve())
    assert report["timings"]["model"]["generated_tokens"] > 0
    cached = sorted((tmp_path / "gguf-cache").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".gguf"  # the same folder as model and base: converted once
    mtime = cached[0].stat().st_mtime_ns
    assert main([*args, "--output_dir", str(tmp_path / "b")]) == 0
    assert cached[0].stat().st_mtime_ns == mtime  # the second evaluation reuses the conversion


def test_a_quantized_evaluation_gguf_is_made_from_the_cached_f16_once(monkeypatch, tmp_path):
    """`gguf_type: q8_0` converts a folder to f16 once, re-quantizes that to q8_0 once, and reuses both after."""
    from secml_recipes import layout
    from secml_recipes.use import gguf_cache

    made = []

    def convert(src, out, qtype):
        made.append(("convert", qtype))
        Path(out).write_bytes(b"f16")

    def quantize(src, out, qtype):
        assert Path(src).name.endswith("-f16.gguf") and Path(src).read_bytes() == b"f16"
        made.append(("quantize", qtype))
        Path(out).write_bytes(qtype.encode())
        return Path(out)

    monkeypatch.setattr(layout, "eval_gguf_cache", lambda: tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    monkeypatch.setattr(gguf_cache, "convert_to_gguf", convert)
    monkeypatch.setattr(gguf_cache, "quantize_gguf", quantize)
    monkeypatch.setattr(gguf_cache, "trained_tokenizer_folder", lambda model, adapter: model)
    model = tmp_path / "trained"
    model.mkdir()
    (model / "config.json").write_text("{}")
    first, tokenizer = gguf_cache.as_gguf(model, None, "q8_0")
    again, _ = gguf_cache.as_gguf(model, None, "q8_0")
    f16, _ = gguf_cache.as_gguf(model)
    assert first == again and first.endswith("-q8_0.gguf") and Path(first).read_bytes() == b"q8_0"
    assert f16.endswith("-f16.gguf") and tokenizer == str(model)
    assert made == [("convert", "f16"), ("quantize", "q8_0")]
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_concurrent_variants_score_like_one_at_a_time_on_a_share_of_the_cores(monkeypatch):
    """`concurrent_variants: 2` decodes the trained model and its base at once, each generator on half the cores, and
    gives the same columns, timings and identities as one variant after the other; transformers stays sequential."""
    import threading

    from secml_recipes.evaluation import evaluate
    from secml_recipes.evaluation.evaluate import EvalArguments, _for_each_variant

    made, running, peak, generators, handed = [], [], [0], {}, {}
    lock = threading.Lock()

    class FakeGenerator:
        def __init__(self, name, n_threads=None, **kwargs):
            self.name, self.resolved_base, self.resolved_adapter = name, None, None
            self.stats, self.stop_loops = {}, False
            made.append((name, n_threads))
            generators[name] = self

        def set_threads(self, n):
            handed[self.name] = n

    def fake_load(dtype, batch_size, name, **kwargs):
        return FakeGenerator(name, **{k: v for k, v in kwargs.items() if k == "n_threads"})

    def produce(name, gen, constrained):
        with lock:
            running.append(name)
            peak[0] = max(peak[0], len(running))
        barrier.wait(timeout=10) if concurrent else None
        with lock:
            running.remove(name)
        if concurrent and name == "model" and constrained:
            done.wait(timeout=10)  # the base finishes first: its cores go to the model
        if name == "base" and constrained:
            done.set()
        return {"score": (name, constrained)}

    monkeypatch.setattr(evaluate, "load_generator", fake_load)
    monkeypatch.setattr(evaluate.os, "cpu_count", lambda: 4)
    variants = {"model": {}, "base": {}}
    outcomes = {}
    for concurrent in (False, True):
        barrier, done = threading.Barrier(2), threading.Event()
        made.clear()
        args = EvalArguments(backend="llama_cpp", concurrent_variants=2 if concurrent else 1)
        results, timings, identities = _for_each_variant(args, variants, {}, produce)
        outcomes[concurrent] = (results, set(timings), set(identities))
        threads = dict(made)
        assert threads == ({"model": 2, "base": 2} if concurrent else {"model": None, "base": None})
    assert peak[0] == 2  # both variants were decoding at the same time
    assert handed == {"model": 4}  # the base, done first, handed its 2 cores to the model still decoding
    assert outcomes[True] == outcomes[False]
    assert set(outcomes[True][0]) == {"model", "model+constrained", "base", "base+constrained"}
    transformers = EvalArguments(backend="transformers", concurrent_variants=2)
    assert evaluate._concurrent_workers(transformers, 2) == 1
