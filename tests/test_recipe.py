"""Recipes: flat YAML onto dataclasses, overrides, and errors that say what would be right."""

from pathlib import Path

import pytest

from secml_recipes.train.recipe import RecipeError, load_recipe, resolve_recipe

ROOT = Path(__file__).resolve().parents[1]
CPU = ["--use_cpu", "true", "--bf16", "false"]
CPU_YAML = "use_cpu: true\nbf16: false\n"


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


FOLDERS = ("full/", "tiny/", "smoke/", "qwen3/", "qwen3-tiny/")
SHIPPED = [f"{folder}{task}" for folder in FOLDERS for task in ("specialist", "generalist")]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_parse(name):
    # Production recipes train in bf16 on accelerators; on this CPU machine they parse with the CPU overrides.
    data, model, sft, speed = load_recipe(ROOT / "recipes" / f"{name}.yaml", CPU)
    assert data.task in {"specialist", "generalist"}
    assert sft.output_dir in {"models/specialist_model", "models/generalist_model_lora"}


def test_production_recipes_say_what_the_brief_says():
    assert resolve_recipe(ROOT / "recipes/full/specialist.yaml")["bf16"] is True
    assert resolve_recipe(ROOT / "recipes/full/generalist.yaml")["bf16"] is True
    data, model, sft, speed = load_recipe(ROOT / "recipes/full/specialist.yaml", CPU)
    assert model.model_name_or_path == "meta-llama/Llama-3.1-8B-Instruct"
    assert not model.use_peft and model.dtype == "bfloat16"
    assert (sft.per_device_train_batch_size, sft.gradient_accumulation_steps) == (2, 8)
    assert sft.output_dir == "models/specialist_model" and sft.max_length >= 8192
    data, model, sft, speed = load_recipe(ROOT / "recipes/full/generalist.yaml", CPU)
    assert model.model_name_or_path == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert (model.use_peft, model.lora_r, model.lora_alpha, model.lora_dropout) == (True, 16, 32, 0.05)
    assert model.lora_target_modules == ["q_proj", "v_proj"]
    # The router loss comes from the MoE config (Mixtral: 0.02), so that a dense model is a one-key change.
    assert sft.router_aux_loss_coef is None and sft.output_dir == "models/generalist_model_lora"


def test_cli_overrides_win_and_are_typed(tmp_path):
    path = write(tmp_path, "task: specialist\nlearning_rate: 1.0e-5\nnum_train_epochs: 3\noutput_dir: out\n" + CPU_YAML)
    data, model, sft, speed = load_recipe(
        path,
        ["--learning_rate", "2e-4", "--num_train_epochs=1", "--use_peft", "--lora_target_modules", "q_proj,k_proj"],
    )
    assert sft.learning_rate == 2e-4 and sft.num_train_epochs == 1
    assert model.use_peft is True and model.lora_target_modules == ["q_proj", "k_proj"]


def test_yaml_scientific_notation_string_is_a_float(tmp_path):
    # YAML 1.1 reads `1e-5` (no dot) as a string; a float field accepts it.
    _, _, sft, _ = load_recipe(write(tmp_path, "learning_rate: 1e-5\noutput_dir: out\n" + CPU_YAML))
    assert sft.learning_rate == 1e-5


def test_unknown_key_names_key_file_and_closest_match(tmp_path):
    path = write(tmp_path, "learnig_rate: 0.1\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert "learnig_rate" in msg and str(path) in msg and "did you mean 'learning_rate'" in msg


def test_unknown_override_is_reported_as_command_line(tmp_path):
    with pytest.raises(RecipeError, match="command line: unknown key 'lora_dropot'; did you mean 'lora_dropout'"):
        load_recipe(write(tmp_path, "output_dir: out\n"), ["--lora_dropot", "0.1"])


def test_bf16_on_a_cpu_machine_says_how_to_fix(tmp_path):
    with pytest.raises(RecipeError, match="use_cpu: true and bf16: false"):
        load_recipe(write(tmp_path, "output_dir: out\nbf16: true\n"))


def test_wrong_type_names_key_and_expected_type(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, "per_device_train_batch_size: two\n"))
    assert "per_device_train_batch_size" in str(err.value) and "int" in str(err.value)
    with pytest.raises(RecipeError, match="'use_peft' expects bool"):
        load_recipe(write(tmp_path, "use_peft: 3\n"))


def test_choices_are_enforced(tmp_path):
    with pytest.raises(RecipeError, match="'task' must be one of"):
        load_recipe(write(tmp_path, "task: oracle\n"))


def test_missing_recipe_is_one_clear_line(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "nope.yaml")
    assert "recipe file not found" in str(err.value) and "\n" not in str(err.value)


def test_hub_token_is_refused_in_recipes(tmp_path):
    with pytest.raises(RecipeError, match="HF_TOKEN"):
        resolve_recipe(write(tmp_path, "hub_token: hf_secret\n"))


def test_sft_main_exits_2_with_message(tmp_path, capsys):
    from secml_recipes.train.sft import main

    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


# --- the command line: values are kept exactly, `none` is a value, the library's spellings work ----------------


def test_key_equals_value_keeps_dashes_in_values(tmp_path):
    recipe = write(tmp_path, "output_dir: out\n" + CPU_YAML)
    _, _, sft, _ = load_recipe(
        recipe, ["--output_dir=runs/out-a", "--hub_model_id=org/my-model", "--learning_rate=-1e-4"]
    )
    assert sft.output_dir == "runs/out-a" and sft.hub_model_id == "org/my-model" and sft.learning_rate == -1e-4
    _, _, sft, _ = load_recipe(recipe, ["--output_dir", "runs/out-b", "--learning_rate", "-2e-4"])
    assert sft.output_dir == "runs/out-b" and sft.learning_rate == -2e-4


def test_report_to_none_means_no_reporters(tmp_path):
    recipe = write(tmp_path, "output_dir: out\n" + CPU_YAML)
    for argv in (["--report_to", "none"], ["--report_to=none"]):
        assert load_recipe(recipe, argv)[2].report_to == []
    assert load_recipe(write(tmp_path, "output_dir: out\nreport_to: none\n" + CPU_YAML))[2].report_to == []


def test_null_bare_flags_dashed_keys_and_lists(tmp_path):
    recipe = write(tmp_path, "output_dir: out\nmax_length: 512\n" + CPU_YAML)
    data, model, sft, _ = load_recipe(
        recipe,
        [
            "--max_length",
            "null",
            "--use-peft",
            "--eval_split=null",
            "--xla_bucket_lengths",
            "[1024, 2048]",
            "--lora_target_modules",
            "q_proj,v_proj",
        ],
    )
    assert sft.max_length is None and model.use_peft is True and data.eval_split is None
    assert data.xla_bucket_lengths == [1024, 2048] and model.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(RecipeError, match="command line: key 'learning_rate' needs a value"):
        load_recipe(recipe, ["--learning_rate"])


def test_a_training_recipe_without_output_dir_writes_where_the_layout_says(tmp_path):
    from secml_recipes import layout

    _, _, sft, _ = load_recipe(write(tmp_path, "task: generalist\n" + CPU_YAML))
    assert sft.output_dir == str(layout.trained_model("generalist")) == "models/generalist_model_lora"


def test_pad_token_goes_to_the_tokenizer_not_to_trls_deprecated_key(tmp_path):
    _, model, sft, _ = load_recipe(write(tmp_path, "output_dir: out\npad_token: '<pad>'\n" + CPU_YAML))
    assert model.pad_token == "<pad>" and sft.pad_token is None


def test_qwen3_recipes_differ_from_the_defaults_only_in_model():
    """recipes/qwen3/ (and qwen3-tiny/): the same runs on Qwen3-8B (full) and Qwen3-30B-A3B (LoRA); nothing
    family-specific, and the layout gives them the default's output folder."""
    from secml_recipes import layout

    for task in ("specialist", "generalist"):
        for folder, qwen_folder in (("full", "qwen3"), ("tiny", "qwen3-tiny")):
            default = resolve_recipe(ROOT / f"recipes/{folder}/{task}.yaml")
            qwen = resolve_recipe(ROOT / f"recipes/{qwen_folder}/{task}.yaml")
            changed = {k for k in default.keys() | qwen.keys() if default.get(k) != qwen.get(k)}
            assert changed == {"model_name_or_path"}, (folder, task, changed)
            assert qwen["output_dir"] == str(layout.trained_model(task))
    assert resolve_recipe(ROOT / "recipes/qwen3/generalist.yaml")["model_name_or_path"] == "Qwen/Qwen3-30B-A3B"
    assert resolve_recipe(ROOT / "recipes/qwen3/specialist.yaml")["model_name_or_path"] == "Qwen/Qwen3-8B"
