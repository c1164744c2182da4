"""Rows whose trained part max_length would cut are dropped by default (kept truncated on request), counted for
train and eval; a max_length that cuts every row fails before the model loads."""

from datasets import Dataset

from helpers import ROOT, make_trainer
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.train.sft import main
from secml_recipes.train.truncation import fit_to_max_length

X = -100
ROWS = [
    {"input_ids": [1, 2, 3, 4], "labels": [X, X, 3, 4]},  # fits
    {"input_ids": [1, 2, 3, 4, 5, 6], "labels": [X, X, X, X, 5, 6]},  # trained end cut
    {"input_ids": [1, 2, 3, 4, 5, 6], "labels": [X, 2, 3, X, X, X]},  # only an untrained tail is cut
    {"input_ids": [1, 2, 3, 4, 5, 6], "labels": [X, X, X, X, X, X]},  # nothing trained
]


def test_cut_rows_are_dropped_and_counted():
    fitted, counts = fit_to_max_length(Dataset.from_list(ROWS), 4, "keep_start", False, "train")
    assert counts == {"rows": 4, "cut": 1, "dropped": 2, "kept_truncated": 0, "no_trained_token": 1}
    assert fitted["labels"] == [[X, X, 3, 4], [X, 2, 3, X]]


def test_keep_truncated_rows_keeps_them_and_still_counts():
    fitted, counts = fit_to_max_length(Dataset.from_list(ROWS), 4, "keep_start", True, "eval")
    # the cut row kept its first 4 tokens, all untrained: no row without a trained token is ever kept
    assert counts == {"rows": 4, "cut": 1, "dropped": 2, "kept_truncated": 0, "no_trained_token": 2}
    fitted, counts = fit_to_max_length(Dataset.from_list(ROWS), 5, "keep_start", True, "eval")
    assert counts["kept_truncated"] == 1 and fitted["labels"][1] == [X, X, X, X, 5]


def test_keep_end_looks_at_the_start_of_the_trained_part():
    fitted, counts = fit_to_max_length(Dataset.from_list(ROWS), 4, "keep_end", False, "train")
    assert counts["cut"] == 1 and fitted["labels"] == [[X, X, 3, 4], [X, X, 5, 6]]


def test_the_trainer_reports_train_and_eval_counts_and_trains_only_whole_completions(tiny_models, tmp_path):
    rows = [
        {k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "fx", 2500)[:6]
    ]
    full = make_trainer("specialist", tiny_models["llama"], rows, tmp_path, "--max_length", "100000")
    lengths = sorted(len(r["input_ids"]) for r in full.train_dataset)
    max_length = lengths[2]
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        "--max_length",
        str(max_length),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "1",
        eval_rows=rows[:3],
    )
    counts = trainer.planned["truncation"]
    assert counts["train"]["rows"] == 6 and counts["train"]["dropped"] == counts["train"]["cut"] == 3
    assert counts["eval"]["rows"] == 3
    eot = trainer.processing_class.convert_tokens_to_ids("<|eot_id|>")
    for row in trainer.train_dataset:
        assert len(row["input_ids"]) <= max_length
        assert [label for label in row["labels"] if label != -100][-1] == eot  # every kept completion ends


def test_a_max_length_cutting_every_row_fails_before_the_model_loads(tiny_models, small_corpus, tmp_path, capsys):
    rc = main(
        [
            str(ROOT / "recipes/tiny/specialist.yaml"),
            "--model_name_or_path",
            str(tiny_models["llama"]),
            "--dataset_path",
            str(small_corpus),
            "--output_dir",
            str(tmp_path / "o"),
            "--max_length",
            "64",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "max_length: 64 tokens would cut the trained part of every train row" in err
    assert "Loading weights" not in err
