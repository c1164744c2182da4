"""`python -m secml_recipes.train.sft RECIPE` end to end on tiny models and a small corpus: outputs, plot, resume."""

import json
import subprocess
import sys

import pytest

from helpers import ROOT
from secml_recipes.train.sft import main


def _run(task, model, corpus, out, *extra):
    return main(
        [
            str(ROOT / "recipes" / "tiny" / f"{task}.yaml"),
            "--model_name_or_path",
            str(model),
            "--dataset_path",
            str(corpus),
            "--output_dir",
            str(out),
            "--max_train_samples",
            "4",
            "--per_device_train_batch_size",
            "1",
            "--gradient_accumulation_steps",
            "1",
            "--logging_steps",
            "1",
            *extra,
        ]
    )


@pytest.mark.slow
def test_specialist_trains_saves_plots_and_resumes(tiny_models, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_PLANTEDtokenNEVERsaved")
    out = tmp_path / "specialist_model"
    assert _run("specialist", tiny_models["llama"], small_corpus, out, "--max_steps", "4", "--save_steps", "2") == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "loss.png",
        "loss_history.json",
        "secml_recipe.json",
    } <= names
    assert (out / "checkpoint-4").is_dir()
    history = json.loads((out / "loss_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert all("trained_tokens" in h and "learning_rate" in h for h in history if "loss" in h)
    # A second launch with a higher step budget continues from checkpoint-4 instead of starting over.
    assert _run("specialist", tiny_models["llama"], small_corpus, out, "--max_steps", "6", "--save_steps", "2") == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    steps = [h["step"] for h in json.loads((out / "loss_history.json").read_text()) if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]
    saved = json.loads((out / "secml_recipe.json").read_text())
    recipe = (
        json.dumps(saved["resolved"]).replace("pad_token", "").replace("eos_token", "").replace("trained_tokens", "")
    )
    assert "token" not in recipe and "hf_PLANTED" not in json.dumps(saved)
    # The corpus' part size travels with the model: triage splits reports as training did.
    assert saved["corpus"]["max_prompt_chars"] == 4000 and len(saved["corpus"]["manifest_sha256"]) == 64
    # What the run did is saved with it: the start-of-run table and the settings behind it.
    settings = json.loads((out / "run_settings.json").read_text())
    assert settings == saved["run_settings"] and settings["backend"] == "cpu" and settings["padding_free"]
    table = {name: value for name, value, _ in settings["table"]}
    assert table["attention"] == "varlen" and table["model_family"] == "llama3 (Llama 3.x)"
    assert table["end_of_turn"] == "<|eot_id|>" and settings["loss_flags"]["assistant_only_loss"]


def test_generalist_saves_a_lora_adapter_with_the_recipe_shape(tiny_models, small_corpus, tmp_path):
    out = tmp_path / "generalist_model_lora"
    assert (
        _run("generalist", tiny_models["mixtral"], small_corpus, out, "--max_steps", "2", "--save_strategy", "no") == 0
    )
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"], sorted(cfg["target_modules"])) == (
        16,
        32,
        0.05,
        ["q_proj", "v_proj"],
    )
    assert (out / "adapter_model.safetensors").exists() and (out / "chat_template.jinja").exists()
    assert "[TOOL_CALLS]" in (out / "chat_template.jinja").read_text()


def test_bad_dataset_path_is_a_clear_error(tiny_models, tmp_path, capsys):
    assert _run("specialist", tiny_models["llama"], tmp_path / "missing.tar.gz", tmp_path / "o") == 2
    assert "dataset not found" in capsys.readouterr().err


def test_push_to_hub_without_token_refuses(tiny_models, small_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACE_TOKEN", raising=False)
    assert (
        _run(
            "specialist",
            tiny_models["llama"],
            small_corpus,
            tmp_path / "o",
            "--push_to_hub",
            "true",
            "--hub_model_id",
            "me/x",
        )
        == 2
    )
    assert "HF_TOKEN" in capsys.readouterr().err


@pytest.mark.slow
def test_accelerate_launch_entry_point(tiny_models, small_corpus, tmp_path):
    """The command users type, through accelerate, on the CPU config."""
    accelerate = [sys.executable, "-m", "accelerate.commands.launch"]
    cmd = accelerate + [
        "--config_file",
        str(ROOT / "accelerate_configs/cpu.yaml"),
        "-m",
        "secml_recipes.train.sft",
        str(ROOT / "recipes/tiny/specialist.yaml"),
        "--model_name_or_path",
        str(tiny_models["llama"]),
        "--dataset_path",
        str(small_corpus),
        "--output_dir",
        str(tmp_path / "acc"),
        "--max_steps",
        "1",
        "--max_train_samples",
        "2",
        "--save_strategy",
        "no",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "acc" / "model.safetensors").exists()


@pytest.mark.skipif(__import__("importlib").util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_qlora_generalist_trains_on_a_4bit_base(tiny_models, small_corpus, tmp_path):
    """QLoRA: the recipe's LoRA on a base loaded in 4 bits (bitsandbytes runs on CPU too, slowly)."""
    from helpers import make_trainer

    rows = [
        {
            "messages": [{"role": "user", "content": "scan?"}, {"role": "assistant", "content": "Conclusion: clean."}],
            "tools": "[]",
        }
    ]
    trainer = make_trainer(
        "generalist", tiny_models["mixtral"], rows, tmp_path, "--load_in_4bit", "true", "--dtype", "bfloat16"
    )
    kinds = {type(m).__name__ for m in trainer.model.modules()}
    assert "Linear4bit" in kinds
    out = tmp_path / "qlora"
    assert (
        _run(
            "generalist",
            tiny_models["mixtral"],
            small_corpus,
            out,
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
            "--load_in_4bit",
            "true",
            "--dtype",
            "bfloat16",
        )
        == 0
    )
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16


def test_a_checkpoint_of_another_model_in_output_dir_is_refused_before_loading(
    tiny_models, small_corpus, tmp_path, capsys
):
    # recipes/qwen3/ and the default recipes share the layout's output folders.
    out = tmp_path / "specialist_model"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    assert _run("specialist", tiny_models["llama"], small_corpus, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: output_dir: ") and "checkpoint of qwen3, this run trains llama" in err[-1]
