"""The pipeline: stage selection, skipping finished stages, starting over (old output kept aside) when inputs or
the code a stage runs change."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from secml_recipes import pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_a_finished_stage_is_skipped_and_a_changed_input_moves_the_old_output_aside(tmp_path, capsys):
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
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, output=out) is True
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, output=out) is False
    assert (out / "runs").read_text() == "1" and json.loads(marker.read_text())["status"] == "done"
    recipe.write_text("# a comment changes nothing\nlr: 1\n")
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, output=out) is False
    capsys.readouterr()
    recipe.write_text("lr: 2\n")
    assert pipeline.run_stage("s", marker, [recipe], [], cmd, output=out) is True
    assert (out / "runs").read_text() == "1"  # run afresh in a new folder...
    (stale,) = tmp_path.glob("out.stale-*")  # ...the old one kept, with its files and its record
    assert (stale / "runs").read_text() == "1" and json.loads((stale / ".secml_stage.json").read_text())["inputs"]
    said = capsys.readouterr().out
    assert f"s: moved {out} aside to {stale}; changed: {recipe}" in said


def test_set_aside_never_reuses_a_name_and_keeps_a_file_outputs_record(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.time, "gmtime", lambda: pipeline.time.struct_time((2025, 1, 2, 3, 4, 5, 3, 2, 0)))
    corpus, marker = tmp_path / "c.tar.gz", tmp_path / "c.tar.gz.stage.json"
    marker.write_text("{}")
    moved = []
    for text in ("one", "two"):
        corpus.write_text(text)
        moved.append(pipeline.set_aside(corpus, marker))
    assert [p.name for p in moved] == ["c.tar.gz.stale-20250102T030405Z", "c.tar.gz.stale-20250102T030405Z-2"]
    assert [p.read_text() for p in moved] == ["one", "two"]
    assert (tmp_path / "c.tar.gz.stale-20250102T030405Z.stage.json").exists()


def test_a_crashed_stage_reruns_in_place(tmp_path):
    out = tmp_path / "out"
    marker = out / ".secml_stage.json"
    out.mkdir()
    (out / "checkpoint-4").mkdir()
    fp = pipeline.stage_fingerprint([], [])
    marker.write_text(json.dumps({"stage": "s", "fingerprint": fp, "status": "running"}))
    assert pipeline.run_stage("s", marker, [], [], [[sys.executable, "-c", "pass"]], output=out) is True
    assert (out / "checkpoint-4").exists()  # kept: training resumes from it
    assert not list(tmp_path.glob("out.stale-*"))


def _package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the package the stage fingerprints read, so a test can edit its code."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "secml_recipes", src / "secml_recipes", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "ROOT", src)
    return src / "secml_recipes"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_stage_is_fingerprinted_by_the_code_it_runs_not_by_docstrings(tmp_path, monkeypatch):
    package = _package_copy(tmp_path, monkeypatch)

    def fp(stage):
        return pipeline.stage_fingerprint([], [], code=stage)

    before = {stage: fp(stage) for stage in ("training", "eval", "quantize", "data")}
    serve = package / "use" / "serve.py"
    _edit(serve, '"""', '"""Edited docstring. ')
    serve.write_text(serve.read_text() + "\n# a comment\n")
    sft = package / "train" / "sft.py"
    _edit(sft, '"""', '"""Edited docstring too. ')
    assert {stage: fp(stage) for stage in before} == before
    generation = package / "use" / "generation.py"  # code in use/: evaluation runs it, training does not
    generation.write_text(generation.read_text() + "\n_CHANGED = 1\n")
    assert fp("training") == before["training"] and fp("eval") != before["eval"]
    sft.write_text(sft.read_text() + "\n_CHANGED = 1\n")
    assert fp("training") != before["training"]


def test_the_stage_code_table_resolves_to_the_subpackages_each_stage_runs():
    """The derived code of each stage, by folder: what a change there reruns (see pipeline.STAGE_CODE)."""
    from secml_recipes.fingerprint import code_files

    def folders(stage):
        entry = pipeline.STAGE_CODE[stage]
        files = code_files([entry, f"{entry}.__main__"], ROOT)
        return {p.relative_to(ROOT / "secml_recipes").parts[0] for p in files if len(p.relative_to(ROOT).parts) > 2}

    assert {"scan", "judge", "teacher", "tasks", "corpus"} <= folders("data") and not folders("data") & {"train", "use"}
    assert {"train", "families", "tasks", "corpus"} <= folders("training")
    assert not folders("training") & {"use", "deploy", "evaluation"}
    assert {"evaluation", "use", "deploy", "tasks", "families"} <= folders("eval")
    assert {"deploy", "families"} <= folders("quantize") and not folders("quantize") & {"use", "evaluation"}
    base = {str(p.relative_to(ROOT)) for p in code_files([pipeline.STAGE_CODE["base-models"]], ROOT)}
    assert "secml_recipes/train/base_models.py" in base and "secml_recipes/train/sft.py" not in base
    tiny = {str(p.relative_to(ROOT)) for p in code_files([pipeline.STAGE_CODE["tiny-models"]], ROOT)}
    assert "tests/harness/tiny.py" in tiny


def _fake_commands(monkeypatch) -> list[str]:
    """Stage commands recorded instead of run; each writes a file into the output its stage expects."""
    from secml_recipes import layout

    ran = []

    def fake_run(cmd):
        if pipeline.STAGE_CODE["training"] in cmd:
            task = "specialist" if "specialist" in cmd[-1] else "generalist"
            (layout.trained_model(task) / "model.safetensors").write_text(f"weights {len(ran)}")
            ran.append(task)
        elif pipeline.STAGE_CODE["data"] in cmd:
            Path(cmd[cmd.index("--out") + 1]).write_text("corpus")
            ran.append("data")
        elif pipeline.STAGE_CODE["tiny-models"] in cmd:
            ran.append("tiny-models")
        elif pipeline.STAGE_CODE["quantize"] in cmd:
            layout.gguf_dir("specialist").mkdir(parents=True, exist_ok=True)
            (layout.gguf_dir("specialist") / "specialist-q8_0.gguf").write_text(f"gguf {len(ran)}")
            layout.quant_report("specialist").write_text("{}")
            ran.append("quantize")

    monkeypatch.setattr(pipeline, "_run", fake_run)
    return ran


def test_a_docstring_edit_in_use_retrains_nothing_and_a_train_change_sets_the_old_model_aside(
    tmp_path, monkeypatch, capsys
):
    package = _package_copy(tmp_path, monkeypatch)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    ran = _fake_commands(monkeypatch)
    args = ["--profile", "tiny", "--data-only", "--specialist-only"]
    assert pipeline.main(args) == 0 and ran == ["tiny-models", "data", "specialist"]
    _edit(package / "use" / "serve.py", '"""', '"""Edited docstring. ')
    ran.clear()
    assert pipeline.main(args) == 0 and ran == []
    assert not list(Path("models").glob("*.stale-*")) and not list(Path("data").rglob("*.stale-*"))
    capsys.readouterr()
    train = package / "train" / "sft.py"
    train.write_text(train.read_text() + "\n_CHANGED = 1\n")
    assert pipeline.main(args) == 0 and ran == ["specialist"]
    (stale,) = Path("models").glob("specialist_model.stale-*")
    assert (stale / "model.safetensors").read_text() == "weights 2"
    said = capsys.readouterr().out
    assert (
        f"specialist: moved models/specialist_model aside to {stale}; changed: code: secml_recipes/train/sft.py" in said
    )


def test_force_reruns_an_up_to_date_stage_and_moves_its_output_aside(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ran = _fake_commands(monkeypatch)
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 0 and ran == ["data"]
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 0 and ran == ["data"]
    capsys.readouterr()
    assert pipeline.main(["--profile", "tiny", "--data-only", "--force", "data"]) == 0 and ran == ["data", "data"]
    assert "data: moved data/tiny/massive_datasets.tar.gz aside to" in capsys.readouterr().out
    (stale,) = (tmp_path / "data/tiny").glob("massive_datasets.tar.gz.stale-*[0-9Z]")
    assert stale.read_text() == "corpus"
    assert pipeline.main(["--profile", "tiny", "--data-only", "--force"]) == 0 and ran == ["data"] * 3
    assert pipeline.main(["--profile", "tiny", "--data-only"]) == 0 and len(ran) == 3


def test_force_names_stages_repeated_or_comma_separated():
    parser = pipeline.argparse.ArgumentParser()
    assert pipeline._forced_stages(parser, None) == set()
    assert pipeline._forced_stages(parser, ["specialist,eval", "data"]) == {"specialist", "eval", "data"}
    assert pipeline._forced_stages(parser, ["all"]) == set(pipeline.STAGES)
    with pytest.raises(SystemExit):
        pipeline._forced_stages(parser, ["specialst"])


def test_a_failing_stage_still_reports_what_finished(tmp_path, monkeypatch, capsys):
    """A stage that fails (e.g. a deployable failing its check) is timed and marked, and the run still prints the
    stage times before it exits non-zero."""
    monkeypatch.chdir(tmp_path)
    real_run_stage = pipeline.run_stage

    def failing_quantize(name, marker, inputs, extra, cmds, **kwargs):
        if name == "data":
            cmds = [[sys.executable, "-c", "raise SystemExit(3)"]]
        return real_run_stage(name, marker, inputs, extra, cmds, **kwargs)

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


def test_a_module_named_in_a_docstring_is_not_code_a_stage_runs(tmp_path):
    """`-m secml_recipes.x` in a command runs that module; the same name in a docstring only mentions it."""
    from secml_recipes.fingerprint import module_imports

    path = tmp_path / "mod.py"
    path.write_text('"""Run it as `python -m pkg.mentioned`."""\nCMD = ["python", "-m", "pkg.launched"]\n')
    assert module_imports("pkg.mod", path, lambda m: m.startswith("pkg."), strings=True) == {"pkg.launched"}


def test_a_forced_quantize_sets_every_deployable_of_the_recipe_aside(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ran = _fake_commands(monkeypatch)
    args = ["--profile", "tiny", "--quantize-only"]
    recipe = pipeline.PROFILES["tiny"].quantize
    (tmp_path / recipe).parent.mkdir(parents=True)
    (tmp_path / recipe).write_text((ROOT / recipe).read_text())
    assert pipeline.main(args) == 0 and pipeline.main(args) == 0 and ran == ["quantize"]
    capsys.readouterr()
    assert pipeline.main([*args, "--force", "quantize"]) == 0 and ran == ["quantize", "quantize"]
    said = capsys.readouterr().out
    (gguf,) = Path("models").glob("specialist-gguf.stale-*")
    (report,) = Path("models").glob("specialist-quant-report.json.stale-*[0-9Z]")
    assert (gguf / "specialist-q8_0.gguf").read_text() == "gguf 0" and report.read_text() == "{}"
    assert "quantize: moved models/specialist-gguf aside to" in said


def test_an_output_made_outside_the_pipeline_is_continued_in_place_not_set_aside(tmp_path):
    """`make smoke` prepares the base model with `make base-models` first: the pipeline must take it as it is."""
    out = tmp_path / "base"
    out.mkdir()
    (out / "config.json").write_text("{}")  # prepared by hand: no stage record
    cmd = [[sys.executable, "-c", f"import pathlib; (pathlib.Path({str(out)!r}) / 'ran').write_text('1')"]]
    assert pipeline.run_stage("base", out / ".secml_stage.json", [], ["smollm2"], cmd, output=out) is True
    assert (out / "config.json").exists() and (out / "ran").exists() and not list(tmp_path.glob("base.stale-*"))


def test_a_folder_fingerprint_sees_its_weights_and_a_checkpoint_folder_is_not_empty(tmp_path):
    """Two checkpoint folders of different runs with the same name and sizes must not share a cached conversion:
    the fingerprint reads a checkpoint folder's own files and the ends of large files, and leaves only nested
    checkpoints out."""
    from secml_recipes.fingerprint import fingerprint_path

    def folder(name, last_byte):
        root = tmp_path / name / "checkpoint-12"
        (root / "checkpoint-4").mkdir(parents=True)
        (root / "config.json").write_text("{}")
        (root / "model.safetensors").write_bytes(bytes(3_000_000) + bytes([last_byte]))
        (root / "checkpoint-4" / "model.safetensors").write_bytes(bytes([last_byte]))
        return root

    a, b, c = folder("run-a", 1), folder("run-b", 2), folder("run-c", 1)
    assert fingerprint_path(a) != hashlib.sha256().hexdigest()
    assert fingerprint_path(a) != fingerprint_path(b)
    assert fingerprint_path(a) == fingerprint_path(c)
    (c / "checkpoint-4" / "model.safetensors").write_bytes(b"other")
    assert fingerprint_path(a) == fingerprint_path(c)


def test_stage_processes_run_under_the_cpu_allocator_settings_unless_the_user_set_them(monkeypatch):
    """glibc reads its allocator variables at process start: the pipeline hands them to every stage process (a
    value the user exported wins), so CPU training reuses freed memory instead of faulting it in every step."""
    from secml_recipes.train.cpu_allocator import CPU_ALLOCATOR_ENV, with_cpu_allocator

    seen = {}
    monkeypatch.setattr(pipeline.subprocess, "run", lambda cmd, check, env: seen.update(env))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    pipeline._run(["true"])
    if sys.platform.startswith("linux"):
        assert seen["MALLOC_MMAP_MAX_"] == CPU_ALLOCATOR_ENV["MALLOC_MMAP_MAX_"] == "0"
    assert seen["MALLOC_TRIM_THRESHOLD_"] == "123"
    assert with_cpu_allocator({"PATH": "/bin"})["PATH"] == "/bin"
