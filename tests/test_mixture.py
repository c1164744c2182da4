"""Mixing corpora by weight: counts follow the weights, the draw follows the seed, bad entries are recipe
errors that name the entry, and the counts are saved beside the run."""

import json

import pytest

from secml_recipes.corpus.__main__ import main as data_cli
from secml_recipes.corpus.mixture import load_mixed_dataset, mix_split, parse_mixture
from secml_recipes.scan.fixtures import real_report_paths
from secml_recipes.train.recipe import DataArguments, RecipeError, load_recipe


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """An ingest folder with the real report (a team's own scans)."""
    out = tmp_path_factory.mktemp("mine") / "ingested"
    assert data_cli(["ingest", str(real_report_paths()[0]), "--out", str(out), "--max-prompt-chars", "4000"]) == 0
    return out


def test_weights_multiply_rows_and_the_seed_fixes_the_draw(small_corpus, ingested):
    sources = parse_mixture([{"path": str(small_corpus), "weight": 0.5}, {"path": str(ingested), "weight": 2.5}])
    rows, counts = mix_split(sources, "specialist", "train", seed=7)
    gen, mine = counts
    assert gen["taken"] == round(0.5 * gen["available"]) and mine["taken"] == 2 * mine["available"] + round(
        0.5 * mine["available"]
    )
    assert len(rows) == gen["taken"] + mine["taken"]
    assert abs(gen["share"] + mine["share"] - 1) < 1e-3
    again, _ = mix_split(sources, "specialist", "train", seed=7)
    other, _ = mix_split(sources, "specialist", "train", seed=8)
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    assert [r["id"] for r in other] != [r["id"] for r in rows]


def test_eval_is_unweighted_and_sources_without_it_are_skipped(small_corpus, ingested):
    sources = parse_mixture([{"path": str(small_corpus), "weight": 3}, {"path": str(ingested), "weight": 2}])
    rows, counts = mix_split(sources, "specialist", "eval", seed=0, weighted=False)
    assert counts[0]["taken"] == counts[0]["available"] > 0 and counts[1] == {
        "path": str(ingested),
        "weight": 2.0,
        "available": 0,
        "taken": 0,
        "share": 0.0,
    }
    assert len(rows) == counts[0]["available"]


def test_counts_are_printed_and_saved(small_corpus, ingested, tmp_path, capsys):
    ds = load_mixed_dataset(
        [{"path": str(small_corpus)}, {"path": str(ingested), "weight": 1}],
        "specialist",
        "train",
        seed=1,
        log_dir=tmp_path,
    )
    assert set(ds.column_names) == {"id", "prompt", "completion"}
    saved = json.loads((tmp_path / "data_mixture.json").read_text())["specialist/train"]
    assert saved["rows"] == len(ds) and [s["path"] for s in saved["sources"]] == [str(small_corpus), str(ingested)]
    assert "weight 1, " in capsys.readouterr().out


@pytest.mark.parametrize(
    "entries, message",
    [
        ([], "non-empty list"),
        ([{"path": "a", "weight": 0}], r"dataset_mixture\[0\]: 'weight' must be a finite number > 0"),
        ([{"path": "a"}, {"path": "b", "wieght": 1}], r"dataset_mixture\[1\]: unknown key\(s\) \['wieght'\]"),
        ([{"path": "a"}, {"path": "a"}], "same path twice"),
        (["a"], r"dataset_mixture\[0\]: expected a mapping"),
    ],
)
def test_bad_entries_are_named(entries, message):
    with pytest.raises(ValueError, match=message):
        parse_mixture(entries)


def test_the_recipe_key_is_checked_before_anything_loads(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_mixture:\n  - {path: data/a, weight: -1}\n")
    with pytest.raises(RecipeError, match=r"invalid DataArguments: dataset_mixture\[0\]: 'weight'"):
        load_recipe(recipe)
    recipe.write_text(
        "use_cpu: true\nbf16: false\ndataset_mixture:\n  - {path: data/a, weight: 2}\n  - {path: data/b}\n"
    )
    data_args = load_recipe(recipe)[0]
    assert isinstance(data_args, DataArguments) and len(data_args.dataset_mixture) == 2


def test_training_reads_the_mixture_when_set_else_dataset_path(small_corpus, ingested, tmp_path):
    from secml_recipes.corpus.mixture import load_task_split

    plain = DataArguments(dataset_path=str(small_corpus))
    mixed = DataArguments(dataset_path="ignored", dataset_mixture=[{"path": str(small_corpus), "weight": 2}])
    n = len(load_task_split(plain, "train", tmp_path / "rejects", None, seed=0))
    assert len(load_task_split(mixed, "train", tmp_path / "rejects", None, seed=0, log_dir=tmp_path)) == 2 * n
    assert len(load_task_split(mixed, "train", tmp_path / "rejects", 5, seed=0)) == 5
    assert (tmp_path / "data_mixture.json").exists()
