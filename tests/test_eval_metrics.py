"""Each evaluation metric on hand-made outputs whose right score is known."""

import copy
import json
import random

import pytest

from secml_recipes.corpus.episodes import build_episode
from secml_recipes.evaluation.rollout import run_rollouts, score_generalist
from secml_recipes.evaluation.specialist_metrics import rule_baseline, score_specialist
from secml_recipes.families import get_family
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.parsing import parse_json_output
from secml_recipes.tasks.tool_loop import parse_assistant_output
from secml_recipes.teacher.enrich import enrich_report


@pytest.fixture(scope="module")
def raw():
    return next(real_reports())


@pytest.fixture(scope="module")
def reference(raw):
    return enrich_report(raw)


def test_perfect_prediction_scores_perfectly(reference, raw):
    m = score_specialist([json.dumps(reference)], [reference], [raw])
    assert m["json_parse_rate"] == m["schema_valid_rate"] == m["finding_recall"] == 1.0
    assert m["severity_accuracy"] == m["category_accuracy"] == m["verdict_accuracy"] == m["attack_f1"] == 1.0
    assert m["action_coverage"] == m["risk_level_accuracy"] == 1.0
    assert m["risk_score_mae"] == 0.0 and m["harmful_action_rate"] == 0.0 and m["actions"] == 3
    assert m["correlation_f1"] is None  # the real fixture has no correlation: undefined, not a free 1.0


def test_malformed_json_scores_zero(reference, raw):
    m = score_specialist(['{"enriched_findings": [', "no json at all"], [reference, reference], [raw, raw])
    assert m["json_parse_rate"] == 0.0 and m["finding_recall"] == 0.0 and m["severity_accuracy"] == 0.0
    assert m["action_coverage"] == 0.0 and m["attack_recall"] == 0.0 and m["risk_level_accuracy"] == 0.0
    assert m["harmful_action_rate"] is None  # no action at all: undefined


def test_json_wrapped_in_prose_is_parsed(reference):
    assert parse_json_output("Here you go:\n```json\n" + json.dumps({"a": 1}) + "\n```") == {"a": 1}


def test_partial_prediction_has_known_scores(reference, raw):
    pred = copy.deepcopy(reference)
    n = len(reference["enriched_findings"])
    first = pred["enriched_findings"][0]
    first["severity"] = "low" if first["severity"] != "low" else "high"
    pred["enriched_findings"][1]["risk_score"] += 10
    pred["enriched_findings"][2]["tags"] = [t for t in pred["enriched_findings"][2]["tags"] if t != "investigate"]
    pred["enriched_findings"] = pred["enriched_findings"][:-1]  # one finding missing
    pred["summaries"]["analyst"]["risk_level"] = "high"
    m = score_specialist([json.dumps(pred)], [reference], [raw])
    assert m["finding_recall"] == pytest.approx((n - 1) / n)
    assert m["severity_accuracy"] == pytest.approx((n - 2) / n)
    assert m["verdict_accuracy"] == pytest.approx((n - 2) / n)
    assert m["risk_score_mae"] == pytest.approx(10 / (n - 1))
    assert m["schema_valid_rate"] == 1.0 and m["risk_level_accuracy"] == 0.0


def test_harmful_actions_are_counted_with_the_teachers_tables(reference, raw):
    pred = copy.deepcopy(reference)
    pred["actions"] = pred["actions"][:2] + [
        {"priority": 0, "action": "Remove the SUID bit from /usr/bin/fusermount3 (chmod u-s /usr/bin/fusermount3)."},
        {"priority": -1, "action": "chmod g-s /usr/bin/chage"},
    ]
    m = score_specialist([json.dumps(pred)], [reference], [raw])
    assert m["actions"] == 4 and m["harmful_action_rate"] == 0.5
    assert m["action_coverage"] == pytest.approx(2 / 3)  # the reference's 3 actions, the first 2 kept


def test_attack_and_correlation_f1():
    def finding(fid, *techniques):
        return {
            "id": fid,
            "severity": "high",
            "category": "ioc",
            "risk_score": 70,
            "tags": [f"attack:{t}" for t in techniques],
        }

    ref = {
        "enriched_findings": [finding("a", "T1", "T2"), finding("b", "T3")],
        "correlations": [{"related_finding_ids": ["a", "b"]}, {"related_finding_ids": ["b", "c"]}],
    }
    pred = {
        "enriched_findings": [finding("a", "T1", "T9")],
        "correlations": [{"related_finding_ids": ["b", "a"]}, {"related_finding_ids": ["x"]}],
    }
    m = score_specialist([json.dumps(pred)], [ref])
    assert (m["attack_precision"], m["attack_recall"]) == (0.5, pytest.approx(1 / 3))
    assert m["attack_f1"] == pytest.approx(0.4)
    assert (m["correlation_precision"], m["correlation_recall"], m["correlation_f1"]) == (0.5, 0.5, 0.5)


def test_rule_baseline_copies_scanner_severity_and_is_schema_valid(reference, raw):
    m = score_specialist([rule_baseline(raw)], [reference], [raw])
    # every finding it lists has the scanner's severity, and the analyst lists no info finding on this host (its
    # ip_forward is expected: the scan shows bridge and NAT modules), so recall is the rule's by construction
    assert m["severity_accuracy"] == m["finding_recall"] == 1.0
    assert m["attack_f1"] == 0.0 and m["json_parse_rate"] == 1.0
    assert m["schema_valid_rate"] == 1.0 and m["verdict_accuracy"] == 0.0 and m["harmful_action_rate"] is None
    assert m["risk_level_accuracy"] == 0.0  # the scanner's worst severity (high) is not the analyst's medium


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

    def generate(self, prompts, max_new_tokens, constraint=None):
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
            ep = build_episode(report, "ioc_investigation", random.Random(0))
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
        calls = [
            {"name": tc["function"]["name"], "arguments": json.loads(tc["function"]["arguments"]), "id": tc["id"]}
            for tc in m["tool_calls"]
        ]
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


def test_a_one_sequence_generator_gets_each_episodes_turns_in_a_row_with_the_same_outcome(ioc_case):
    """A generator that decodes one sequence at a time (llama.cpp: `batched = False`) is given each episode's turns one
    after another, so its prompt only grows and the KV cache is reused; the trajectories are those of the batched
    order, where every episode advances one turn per call."""
    row, scans = ioc_case
    second = {**row, "id": "e2", "messages": [dict(m) for m in row["messages"]]}
    second["messages"][1] = {**second["messages"][1], "content": second["messages"][1]["content"] + " (again)"}

    class Recording(Scripted):
        def __init__(self, script, batched):
            super().__init__(script)
            self.batched, self.calls = batched, []

        def generate(self, prompts, max_new_tokens, constraint=None):
            self.calls.append([json.loads(p)[1]["content"] for p in prompts])
            return super().generate(prompts, max_new_tokens, constraint)

    together, one_by_one = Recording(_replay(row), True), Recording(_replay(row), False)
    batched = run_rollouts(together, [row, second], scans, max_steps=8)
    serial = run_rollouts(one_by_one, [row, second], scans, max_steps=8)
    assert [(t.episode_id, t.messages, t.final) for t in serial] == [
        (t.episode_id, t.messages, t.final) for t in batched
    ]
    assert all(len(c) == 2 for c in together.calls)  # both episodes in every call
    users = [c[0] for c in one_by_one.calls]
    assert all(len(c) == 1 for c in one_by_one.calls)
    assert users == sorted(users, key=lambda u: u.endswith("(again)"))  # e1's turns all come before e2's
    assert len(one_by_one.calls) == 2 * len(together.calls)


def test_hallucinated_tool_and_wrong_argument_types(ioc_case):
    row, scans = ioc_case

    def script(k, _):
        return [
            '[TOOL_CALLS] [{"name": "run_shell", "arguments": {"cmd": "cat /etc/shadow"}}]',
            '[TOOL_CALLS] [{"name": "check_process_details", "arguments": {"pid": "abc"}}]',
            "Conclusion: done.",
        ][k]

    trajs = run_rollouts(Scripted(script), [row], scans, max_steps=5)
    m = score_generalist(trajs)
    assert m["undeclared_tool_calls"] == 1 and m["calls"] == 2
    assert m["argument_validity"] == 0.0
    results = [json.loads(x["content"]) for x in trajs[0].messages if x["role"] == "tool"]
    assert "unknown tool" in results[0]["error"] and "invalid arguments" in results[1]["error"]
    assert m["task_success_rate"] == 0.0


def test_a_model_that_loops_on_tool_calls_hits_the_step_limit(ioc_case):
    row, scans = ioc_case

    def loop(k, _):
        return '[TOOL_CALLS] [{"name": "search_findings", "arguments": {"query": "ssh"}}]'

    m = score_generalist(run_rollouts(Scripted(loop), [row], scans, max_steps=4))
    assert m["step_limit_rate"] == 1.0 and m["mean_steps"] == 4 and m["task_success_rate"] == 0.0


def test_malformed_tool_calls_count_against_the_parse_rate(ioc_case):
    row, scans = ioc_case
    m = score_generalist(
        run_rollouts(
            Scripted(lambda k, _: 'Let me check [TOOL_CALLS] [{"name": "hash_binary", "argu'), [row], scans, max_steps=4
        )
    )
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

    ref = {
        "enriched_findings": [
            {"id": "a", "risk_score": 70},
            {"id": "b", "risk_score": 20},
            {"id": "c", "risk_score": 5},
        ]
    }
    pred = json.dumps(
        {
            "enriched_findings": [
                {"id": "a", "risk_score": 65},
                {"id": "b", "risk_score": True},
                {"id": "z", "risk_score": 9},
            ]
        }
    )
    assert risk_score_pairs([pred, "not json"], [ref, ref]) == [(70, 65.0)]
