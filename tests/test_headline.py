"""The evaluation headline: trained vs base per metric, undefined values shown as such, files written."""

import copy
import json

from secml_recipes.evaluation.headline import headline_rows, main, markdown


def _report(results, **sizes):
    return {"results": results, "sizes": sizes, "models": {"model": {"base": {"path": "m"}}}}


SPECIALIST = _report(
    {
        "model": {
            "json_parse_rate": 1.0,
            "schema_valid_rate": 0.75,
            "finding_recall": 0.5,
            "severity_accuracy": 0.25,
            "heldout_loss": 0.4,
        },
        "base": {
            "json_parse_rate": 0.125,
            "schema_valid_rate": 0.0,
            "finding_recall": 0.0,
            "severity_accuracy": 0.0,
            "heldout_loss": 2.5,
        },
        "rule": {"json_parse_rate": 1.0},
    },
    examples=8,
)
SPECIALIST["intervals"] = {"model": {"json_parse_rate": [1.0, 1.0]}, "base": {"json_parse_rate": [0.0, 0.375]}}
GENERALIST = _report(
    {
        "model": {"tool_call_parse_rate": 0.9, "argument_validity": 0.8, "tool_call_f1": 0.4, "task_success_rate": 0.2},
        "base": {
            "tool_call_parse_rate": None,
            "argument_validity": None,
            "tool_call_f1": 0.0,
            "task_success_rate": 0.0,
        },
    },
    episodes=5,
)


def test_rows_pair_the_model_with_its_base_and_say_why_a_value_is_undefined():
    rows = {r["metric"]: r for r in headline_rows({"specialist": SPECIALIST, "generalist": GENERALIST})}
    assert rows["schema-valid rate"]["model"] == 0.75 and rows["schema-valid rate"]["base"] == 0.0
    assert rows["JSON parse rate"]["delta"] == 0.875 and rows["JSON parse rate"]["n"] == 8
    assert (
        rows["tool-call validity"]["delta"] is None
        and rows["tool-call validity"]["note"] == "base: no tool call attempted"
    )
    assert rows["task success"]["n"] == 5
    both = headline_rows({"generalist": _report({"model": {"argument_validity": None}, "base": {}}, episodes=2)})
    assert {r["metric"]: r["note"] for r in both}["tool-argument validity"] == "no call to a declared tool"
    table = markdown(list(rows.values()))
    assert "| JSON parse rate | specialist (8) | 1.000 [1.00, 1.00] | 0.125 [0.00, 0.38] | 1.000 | +0.875 |" in table
    assert "| tool-call validity (base: no tool call attempted) | generalist (5) | 0.900 | n/a | - | n/a |" in table


def test_only_the_evaluated_tasks_are_listed():
    rows = headline_rows({"specialist": SPECIALIST})
    assert {r["task"] for r in rows} == {"specialist"} and len(rows) == 10


def test_held_out_loss_is_a_lower_is_better_row_and_missing_scores_say_why():
    rows = {(r["metric"], r["task"]): r for r in headline_rows({"specialist": SPECIALIST, "generalist": GENERALIST})}
    loss = rows[("held-out loss", "specialist")]
    assert loss["model"] == 0.4 and loss["base"] == 2.5 and abs(loss["delta"] + 2.1) < 1e-9
    table = markdown(list(rows.values()))
    assert "| held-out loss (lower is better) | specialist (8) | 0.400 | 2.500 | - | -2.100 |" in table
    assert "held-out loss (not scored" in table  # the generalist report has no held-out loss


def test_the_command_writes_markdown_json_and_plot(tmp_path, capsys):
    for task, report in (("specialist", SPECIALIST), ("generalist", GENERALIST)):
        (tmp_path / task).mkdir()
        (tmp_path / task / "eval_report.json").write_text(json.dumps(report))
    assert main([str(tmp_path)]) == 0
    assert "| task success | generalist (5) | 0.200 | 0.000 | - | +0.200 |" in capsys.readouterr().out
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert [r["metric"] for r in saved["rows"]][:2] == ["JSON parse rate", "schema-valid rate"]
    assert (tmp_path / "summary.png").stat().st_size > 0 and "summary.png" in (tmp_path / "summary.md").read_text()


def test_no_report_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "run the evaluation first" in capsys.readouterr().err


def test_constrained_columns_sit_beside_free_decoding():
    report = copy.deepcopy(SPECIALIST)
    report["results"]["model+constrained"] = {"schema_valid_rate": 1.0, "judge_harmful_rate": 0.0}
    report["results"]["base+constrained"] = {"schema_valid_rate": 0.75}
    report["intervals"]["model+constrained"] = {"schema_valid_rate": [1.0, 1.0]}
    rows = headline_rows({"specialist": report})
    table = markdown(rows)
    assert "trained, constrained [95% CI] | base, constrained [95% CI]" in table
    valid = next(line for line in table.splitlines() if line.startswith("| schema-valid rate"))
    assert "| 1.000 [1.00, 1.00] | 0.750 |" in valid and valid.endswith("| +0.250 |")
    assert table.splitlines()[0].endswith("| change | change, constrained |")
    judged = next(r for r in rows if r["key"] == "judge_harmful_rate")
    assert judged["constrained"]["model+constrained"] == 0.0 and judged["model"] is None
