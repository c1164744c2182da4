"""`secml COMMAND`: one command for every stage; `--help` on each lists its arguments or recipe keys with defaults."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import ROOT
from secml_recipes import cli


def _run_module(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_with_its_description(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: secml COMMAND")
    for name, (_, description) in cli.COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(description)}$", out, flags=re.M), name
    assert "-m secml_recipes.sft" in out, "the multi-device launch is named"


def test_every_command_of_the_brief_is_there():
    wanted = {"train", "data", "eval", "quantize", "push", "plan", "triage", "agent", "serve", "analyze", "pipeline",
              "teacher-check"}  # fmt: skip
    assert set(cli.COMMANDS) == wanted


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "commands:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [(["trian"], "unknown command 'trian'; did you mean 'train'?"),
     (["teacher_check"], "did you mean 'teacher-check'?"),
     (["frobnicate"], "unknown command 'frobnicate'; the commands are data, plan, train"),
     (["--verbose"], "unknown option '--verbose'")],
)  # fmt: skip
def test_an_unknown_command_is_one_line_with_a_suggestion(capsys, argv, expected):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


# command -> what its --help must show (an option and, where it has one, a default)
ARGPARSE_HELP = {
    "data": ["usage: secml data", "generate", "ingest", "validate"],
    "plan": ["usage: secml plan", "--gpus", "--launch"],
    "push": ["usage: secml push", "--namespace", "--dry-run"],
    "triage": ["usage: secml triage", "--model"],
    "agent": ["usage: secml agent", "--max-steps", "(default: 8)"],
    "serve": ["usage: secml serve", "--model"],
    "analyze": ["usage: secml analyze", "--model"],
    "pipeline": ["usage: secml pipeline", "--profile", "(default: full)"],
    "teacher-check": ["usage: secml teacher-check", "--hosts", "(default: 200)"],
}


@pytest.mark.parametrize("command", sorted(ARGPARSE_HELP))
def test_every_argparse_command_answers_help(capsys, command):
    assert cli.main([command, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    for text in ARGPARSE_HELP[command]:
        assert text in out, (command, text)


def test_data_subcommands_answer_help_with_defaults(capsys):
    assert cli.main(["data", "build", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: secml data build" in out and "--specialist SPECIALIST (default: 5000)" in out


def _keys(help_text: str) -> dict[str, str]:
    return dict(re.findall(r"^  --(\w+) \(default: ([^)]*)\)", help_text, flags=re.M))


@pytest.mark.parametrize("argv", [["train", "--help"], ["train", "-h"], ["train", "no/such.yaml", "--lr", "--help"]])
def test_train_help_lists_every_key_by_dataclass_before_loading_anything(capsys, argv):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: secml train RECIPE.yaml [--key value ...]")
    groups = ["data keys (DataArguments)", "model keys (ModelArguments", "speed keys (SpeedArguments)",
              "SFT keys (TRL's SFTConfig)", "training keys (transformers' TrainingArguments"]  # fmt: skip
    positions = [out.index(title) for title in groups]
    assert positions == sorted(positions)
    keys = _keys(out)
    assert keys["dataset_path"].endswith("massive_datasets.tar.gz")
    assert keys["learning_rate"] == "2e-05" and keys["max_length"] == "1024" and keys["task"] == "specialist"
    assert out.index("--max_length") > out.index("SFT keys") and out.index("--learning_rate") > out.index("training k")
    assert "hub_token" not in keys, "a refused key is not offered"
    assert len(keys) > 150 and all(len(line) <= 120 for line in out.splitlines())


def test_train_help_lists_exactly_the_keys_a_recipe_accepts(capsys):
    from secml_recipes.train.recipe import _FORBIDDEN_KEYS, recipe_parser

    cli.main(["train", "--help"])
    listed = _keys(capsys.readouterr().out)
    parser = recipe_parser()
    accepted = {key for key in parser.owner if key in parser.actions} - set(_FORBIDDEN_KEYS)
    assert set(listed) == accepted


def test_train_without_a_recipe_is_a_usage_line(capsys):
    assert cli.main(["train"]) == 2
    assert "usage: secml train RECIPE.yaml" in capsys.readouterr().err


def test_eval_and_quantize_help_list_their_keys(capsys):
    assert cli.main(["eval", "recipes/full/eval-specialist.yaml", "--help"]) == 0
    keys = _keys(capsys.readouterr().out)
    assert keys["model"] == "null" and keys["batch_size"] == "4" and keys["baselines"] == "['base', 'rule']"
    assert cli.main(["quantize", "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: secml quantize") and "keys of each models entry (ModelQuantSpec)" in out
    keys = _keys(out)
    assert keys["merge_dtype"] == "bfloat16" and keys["gptq_bits"] == "4" and keys["name"] == "required"


def test_python_dash_m_secml_recipes_is_the_command_and_help_imports_no_torch():
    done = _run_module("secml_recipes", "--help")
    assert done.returncode == 0 and "teacher-check" in done.stdout
    done = _run_module("secml_recipes", "evaluate")
    assert done.returncode == 2 and "did you mean 'eval'?" in done.stderr and "Traceback" not in done.stderr
    probe = "import sys; from secml_recipes import cli; cli.main(['--help']); cli.main(['trian']); " + (
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    done = _run_module(code=probe)
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr


@pytest.mark.slow
def test_the_old_training_module_still_answers_help():
    done = _run_module("secml_recipes.sft", "--help")
    assert done.returncode == 0 and "--learning_rate (default: 2e-05)" in done.stdout, done.stderr[-2000:]
