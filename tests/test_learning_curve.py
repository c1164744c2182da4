"""The learning curve: base at step 0, each complete checkpoint, the final weights; one evaluation each."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from secml_recipes.evaluation import learning_curve
from secml_recipes.evaluation.evaluate import EvalArguments


def _checkpoint(folder, step):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "model.safetensors"))


def _run(tmp_path):
    run = tmp_path / "run"
    for step in (20, 10):
        _checkpoint(run / f"checkpoint-{step}", step)
    (run / "checkpoint-30").mkdir()  # killed while saving: no trainer state, skipped
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 25}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(run / "model.safetensors"))
    return run


def test_points_are_the_base_each_complete_checkpoint_in_step_order_and_the_final_weights(tmp_path):
    run = _run(tmp_path)
    points = learning_curve.run_points(run, "models/base/x")
    assert points == [
        (0, "models/base/x"),
        (10, str(run / "checkpoint-10")),
        (20, str(run / "checkpoint-20")),
        (25, str(run)),
    ]
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        learning_curve.run_points(tmp_path / "missing", None)
    with pytest.raises(FileNotFoundError, match="fewer than two points"):
        learning_curve.run_points(tmp_path, None)


def test_each_point_is_evaluated_alone_and_the_curve_is_written(tmp_path, monkeypatch, capsys):
    run = _run(tmp_path)
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(f"task: specialist\nbase_model: base\ndataset_path: c.tar.gz\noutput_dir: {tmp_path / 'e'}\n")
    seen = []

    def fake_evaluate(args):
        seen.append((args.model, args.baselines, args.output_dir))
        rate = len(seen) / 4  # rises with the steps
        return {
            "sizes": {"examples": 8},
            "results": {
                "model": {"json_parse_rate": rate, "schema_valid_rate": None, "heldout_loss": 3 - 2 * rate},
                "model+constrained": {"json_parse_rate": 1.0, "schema_valid_rate": 1.0},
            },
            "intervals": {"model": {"json_parse_rate": [rate / 2, rate]}},
        }

    monkeypatch.setattr(learning_curve, "evaluate", fake_evaluate)
    out = tmp_path / "curve"
    assert learning_curve.main([str(recipe), "--run", str(run), "--out", str(out), "--max_samples", "8"]) == 0
    assert [s[0] for s in seen] == ["base", str(run / "checkpoint-10"), str(run / "checkpoint-20"), str(run)]
    assert all(s[1] == [] and s[2].startswith(str(out / "step-")) for s in seen)
    table = (out / "curve.md").read_text()
    assert "| 0 | 8 | 0.250 [0.12, 0.25] | - |" in table and "| 25 | 8 | 1.000 [0.50, 1.00] | - |" in table
    free, bound = table.split("Under the task's constraint")
    assert "heldout_loss" in free and "heldout_loss" not in bound and "| 0 | 8 | 1.000 | 1.000 |" in bound
    assert [r["step"] for r in json.loads((out / "curve.json").read_text())["rows"]] == [0, 10, 20, 25]
    assert (out / "curve.png").stat().st_size > 0


def test_the_recipe_keys_are_checked(tmp_path, capsys):
    recipe = tmp_path / "eval.yaml"
    recipe.write_text("task: specialist\nmax_sample: 3\n")
    assert learning_curve.main([str(recipe), "--run", str(tmp_path)]) == 2
    assert "max_sample" in capsys.readouterr().err
    assert EvalArguments().task == "specialist"
