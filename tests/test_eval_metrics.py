"""Each evaluation metric on hand-made outputs whose right score is known."""

import copy
import json
import random

import pytest

from secml_recipes.data.enrich import enrich_report
from secml_recipes.data.episodes import build_episode
from secml_recipes.data.fixtures import real_reports
from secml_recipes.data.generate import generate_report, plan_hosts
from secml_recipes.families import get_family
from secml_recipes.evaluation.rollout import parse_assistant_output, run_rollouts, score_generalist
from secml_recipes.evaluation.specialist_metrics import parse_json_output, rule_baseline, score_specialist


@pytest.fixture(scope="module")
def reference():
    return enrich_report(next(real_reports()))


def test_perfect_prediction_scores_perfectly(reference):
    m = score_specialist([json.dumps(reference)], [reference])
    assert m["json_parse_rate"] == m["schema_valid_rate"] == m["finding_recall"] == 1.0
    assert m["severity_accuracy"] == m["category_accuracy"] == m["attack_f1"] == m["action_coverage"] == 1.0
    assert m["risk_score_mae"] == 0.0
    assert m["correlation_f1"] is None  # the real fixture has no correlation: undefined, not a free 1.0


def test_malformed_json_scores_zero(reference):
    m = score_specialist(['{"findings": [', "no json at all"], [reference, reference])
    assert m["json_parse_rate"] == 0.0 and m["finding_recall"] == 0.0 and m["severity_accuracy"] == 0.0
    assert m["action_coverage"] == 0.0 and m["attack_recall"] == 0.0


def test_json_wrapped_in_prose_is_parsed(reference):
    assert parse_json_output("Here you go:\n```json\n" + json.dumps({"a": 1}) + "\n```") == {"a": 1}


def test_partial_prediction_has_known_scores(reference):
    pred = copy.deepcopy(reference)
    n = len(reference["findings"])
    pred["findings"][0]["severity"] = "low" if reference["findings"][0]["severity"] != "low" else "high"
    pred["findings"][1]["risk_score"] += 10
    pred["findings"] = pred["findings"][:-1]  # one finding missing
    m = score_specialist([json.dumps(pred)], [reference])
    assert m["finding_recall"] == pytest.approx((n - 1) / n)
    assert m["severity_accuracy"] == pytest.approx((n - 2) / n)
    assert m["risk_score_mae"] == pytest.approx(10 / (n - 1))
    assert m["schema_valid_rate"] == 1.0


def test_attack_and_correlation_f1():
    ref = {"findings": [{"id": "a", "severity": "high", "category": "ioc", "risk_score": 70, "attack_techniques": ["T1", "T2"]},
                        {"id": "b", "severity": "low", "category": "ioc", "risk_score": 30, "attack_techniques": ["T3"]}],
           "correlations": [{"related_finding_ids": ["a", "b"]}, {"related_finding_ids": ["b", "c"]}],
           "reductions": {"top_risks": [{"id": "a"}, {"id": "b"}]}}
    pred = {"findings": [{"id": "a", "severity": "high", "category": "ioc", "risk_score": 70, "attack_techniques": ["T1", "T9"]}],
            "correlations": [{"related_finding_ids": ["b", "a"]}, {"related_finding_ids": ["x"]}],
            "actions": [{"finding_ids": ["a"]}]}
    m = score_specialist([json.dumps(pred)], [ref])
    assert (m["attack_precision"], m["attack_recall"]) == (0.5, pytest.approx(1 / 3))
    assert m["attack_f1"] == pytest.approx(0.4)
    assert (m["correlation_precision"], m["correlation_recall"], m["correlation_f1"]) == (0.5, 0.5, 0.5)
    assert m["action_coverage"] == 0.5


def test_rule_baseline_copies_scanner_severity(reference):
    m = score_specialist([rule_baseline(next(real_reports()))], [reference])
    assert m["severity_accuracy"] == 1.0 and m["attack_f1"] == 0.0 and m["json_parse_rate"] == 1.0


# --- generalist ---------------------------------------------------------------------------------

class Scripted:
    """A stand-in model that answers from a script: outputs[i] for the i-th call of each episode."""

    name = "scripted"
    family = get_family("mistral")

    def __init__(self, script):
        self.script = script
        self.turn = {}

    def render(self, messages, tools=None):
        return json.dumps(messages)

    def generate(self, prompts, max_new_tokens):
        outs = []
        for p in prompts:
            user = json.loads(p)[1]["content"]
            k = self.turn.get(user, 0)
            self.turn[user] = k + 1
            outs.append(self.script(k, json.loads(p)))
        return outs


@pytest.fixture(scope="module")
def ioc_case():
    for plan in plan_hosts(200, 11):
        if plan.profile == "compromised_host":
            report = generate_report(plan)
            ep = build_episode(report, enrich_report(report), "investigate_ioc", random.Random(0))
            if ep:
                row = {"id": "e1", "host_id": plan.host_id, **ep}
                return row, {plan.host_id: report}
    raise RuntimeError("no IOC host")


def _replay(row):
    turns = [m for m in row["messages"] if m["role"] == "assistant"]

    def script(k, _messages):
        m = turns[k]
        if not m.get("tool_calls"):
            return m["content"]
        calls = [{"name": tc["function"]["name"], "arguments": json.loads(tc["function"]["arguments"]), "id": tc["id"]}
                 for tc in m["tool_calls"]]
        return f"{m['content']} [TOOL_CALLS] {json.dumps(calls)}"
    return script


def test_replaying_the_reference_scores_perfectly(ioc_case):
    row, scans = ioc_case
    trajs = run_rollouts(Scripted(_replay(row)), [row], scans, max_steps=8)
    m = score_generalist(trajs)
    assert m["tool_call_parse_rate"] == 1.0 and m["tool_call_f1"] == 1.0 and m["tool_name_f1"] == 1.0
    assert m["undeclared_tool_calls"] == 0 and m["argument_validity"] == 1.0
    assert m["task_success_rate"] == 1.0 and m["step_limit_rate"] == 0.0
    # Tool results came from the simulated environment: identical to the reference episode's.
    got = [x["content"] for x in trajs[0].messages if x["role"] == "tool"]
    assert got == [x["content"] for x in row["messages"] if x["role"] == "tool"]


def test_hallucinated_tool_and_wrong_argument_types(ioc_case):
    row, scans = ioc_case

    def script(k, _):
        return ['[TOOL_CALLS] [{"name": "run_shell", "arguments": {"cmd": "cat /etc/shadow"}}]',
                '[TOOL_CALLS] [{"name": "check_process_details", "arguments": {"pid": "abc"}}]',
                "Conclusion: done."][k]
    trajs = run_rollouts(Scripted(script), [row], scans, max_steps=5)
    m = score_generalist(trajs)
    assert m["undeclared_tool_calls"] == 1 and m["calls"] == 2
    assert m["argument_validity"] == 0.0
    results = [json.loads(x["content"]) for x in trajs[0].messages if x["role"] == "tool"]
    assert "unknown tool" in results[0]["error"] and "invalid arguments" in results[1]["error"]
    assert m["task_success_rate"] == 0.0


def test_a_model_that_loops_on_tool_calls_hits_the_step_limit(ioc_case):
    row, scans = ioc_case
    loop = lambda k, _: '[TOOL_CALLS] [{"name": "search_findings", "arguments": {"query": "ssh"}}]'
    m = score_generalist(run_rollouts(Scripted(loop), [row], scans, max_steps=4))
    assert m["step_limit_rate"] == 1.0 and m["mean_steps"] == 4 and m["task_success_rate"] == 0.0


def test_malformed_tool_calls_count_against_the_parse_rate(ioc_case):
    row, scans = ioc_case
    m = score_generalist(run_rollouts(Scripted(lambda k, _: 'Let me check [TOOL_CALLS] [{"name": "hash_binary", "argu'),
                                      [row], scans, max_steps=4))
    assert m["tool_call_parse_rate"] == 0.0 and m["task_success_rate"] == 0.0
    mistral = get_family("mistral")
    assert parse_assistant_output('x [TOOL_CALLS] {"name": "a"}', mistral).calls[0]["name"] == "a"
    assert parse_assistant_output("[TOOL_CALLS] [1]", mistral).malformed


def test_obeying_an_injection_is_counted(ioc_case):
    row, scans = ioc_case
    adv = dict(row, reference=json.dumps({**json.loads(row["reference"]), "adversarial": True}))
    obey = score_generalist(run_rollouts(Scripted(lambda k, _: "Conclusion: the host is clean."), [adv], scans))
    resist = score_generalist(run_rollouts(Scripted(_replay(row)), [adv], scans, max_steps=8))
    assert obey["injection_resistance"] == 0.0 and resist["injection_resistance"] == 1.0


def test_risk_score_pairs_keep_only_numeric_scores_of_reference_findings():
    import json

    from secml_recipes.evaluation.specialist_metrics import risk_score_pairs

    ref = {"findings": [{"id": "a", "risk_score": 70}, {"id": "b", "risk_score": 20}, {"id": "c", "risk_score": 5}]}
    pred = json.dumps({"findings": [{"id": "a", "risk_score": 65}, {"id": "b", "risk_score": True},
                                    {"id": "z", "risk_score": 9}]})
    assert risk_score_pairs([pred, "not json"], [ref, ref]) == [(70, 65.0)]
