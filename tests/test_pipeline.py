"""The pipeline: stage selection, skipping finished stages, starting over when inputs change."""

import json
import sys
from pathlib import Path

import pytest

from secml_recipes import pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_a_finished_stage_is_skipped_and_a_changed_input_reruns_it(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 1\n")
    out = tmp_path / "out"
    marker = out / ".secml_stage.json"
    cmd = [
        [
            sys.executable,
            "-c",
            f"import pathlib; p=pathlib.Path({str(out)!r}); p.mkdir(exist_ok=True); "
            "f=p/'runs'; f.write_text(str(int(f.read_text())+1) if f.exists() else '1')",
        ]
    ]
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, clear=out) is True
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, clear=out) is False
    assert (out / "runs").read_text() == "1" and json.loads(marker.read_text())["status"] == "done"
    recipe.write_text("lr: 2\n")
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, clear=out) is True
    assert (out / "runs").read_text() == "1"  # cleared, then run afresh


def test_a_crashed_stage_reruns_in_place(tmp_path):
    out = tmp_path / "out"
    marker = out / ".secml_stage.json"
    out.mkdir()
    (out / "checkpoint-4").mkdir()
    fp = pipeline.stage_fingerprint([], [])
    marker.write_text(json.dumps({"stage": "s", "fingerprint": fp, "status": "running"}))
    assert pipeline.run_stage("s", marker, [], [], [[sys.executable, "-c", "pass"]], clear=out) is True
    assert (out / "checkpoint-4").exists()  # kept: training resumes from it


def test_a_failing_stage_still_reports_what_finished(tmp_path, monkeypatch, capsys):
    """A stage that fails (e.g. a deployable failing its check) is timed and marked, and the run still prints the
    stage times before it exits non-zero."""
    monkeypatch.chdir(tmp_path)
    real_run_stage = pipeline.run_stage

    def failing_quantize(name, marker, inputs, extra, cmds, clear=None):
        if name == "data":
            return real_run_stage(name, marker, inputs, extra, [[sys.executable, "-c", "raise SystemExit(3)"]])
        return real_run_stage(name, marker, inputs, extra, cmds, clear)

    monkeypatch.setattr(pipeline, "run_stage", failing_quantize)
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 3
    captured = capsys.readouterr()
    assert "stage times" in captured.out and "FAILED" in captured.out
    assert "stage failed" in captured.err
    assert json.loads((tmp_path / "data/tiny/massive_datasets.tar.gz.stage.json").read_text())["status"] == "running"


def test_data_only_builds_the_corpus_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 0
    assert (tmp_path / "data/tiny/massive_datasets.tar.gz").exists()
    assert "stage times" in capsys.readouterr().out
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 0
    assert "data: up to date, skipped" in capsys.readouterr().out


def test_the_smoke_profile_trains_and_evaluates_the_real_base_model_against_itself_untrained():
    """`make smoke` runs on SmolLM2-135M-Instruct from its registry wheel; each evaluation's baseline is that
    same untrained model and the held-out split, so the headline says what training changed."""
    from secml_recipes import layout
    from secml_recipes.evaluation.evaluate import EvalArguments
    from secml_recipes.train.recipe import load_recipe

    smoke = pipeline.PROFILES["smoke"]
    base = str(layout.base_model("smollm2"))
    assert smoke.base_models == ["smollm2"] and not smoke.tiny_models
    for task in layout.TASKS:
        data, model, _, _ = load_recipe(smoke.training_recipe(task))
        assert model.model_name_or_path == base and data.dataset_path == smoke.corpus
        (ev,) = load_recipe(smoke.eval_recipe(task), [], classes=(EvalArguments,))
        assert ev.split == "test" and "base" in ev.baselines and ev.model == str(layout.trained_model(task))
        assert ev.dataset_path == smoke.corpus and ev.output_dir == str(layout.eval_dir(task, "smoke"))
    (spec,) = load_recipe(smoke.eval_recipe("specialist"), [], classes=(EvalArguments,))
    assert spec.base_model == base


@pytest.mark.skipif(
    not (ROOT / "models/base/smollm2-135m-instruct/config.json").exists(),
    reason="SmolLM2 not prepared here (make base-models)",
)
def test_the_smoke_recipes_resolve_on_the_prepared_smollm2(monkeypatch):
    """On the real prepared folder (optional: needs `make base-models`): ChatML family, its own end-of-turn token."""
    from secml_recipes.train.recipe import load_recipe
    from secml_recipes.train.run_settings import detect_environment
    from secml_recipes.train.sft import resolve_run

    monkeypatch.chdir(ROOT)
    for task in ("specialist", "generalist"):
        settings, tokenizer = resolve_run(
            *load_recipe(pipeline.PROFILES["smoke"].training_recipe(task)), detect_environment()
        )
        assert settings.model_family == "chatml" and tokenizer.eos_token == "<|im_end|>"
