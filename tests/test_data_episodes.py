"""Episodes: every call names a declared tool with schema-valid arguments, and every result is what the
simulated environment answers."""

import json

import jsonschema
import pytest

from secml_recipes.data.enrich import enrich_report
from secml_recipes.data.episodes import EPISODE_KINDS, build_episodes
from secml_recipes.data.generate import INJECTIONS, generate_report, plan_hosts
from secml_recipes.data.tools import TOOL_NAMES, ScanEnvironment, ToolError, tool_result_text
from secml_recipes.data.validate import generalist_row_error


@pytest.fixture(scope="module")
def episodes():
    out = []
    for plan in plan_hosts(80, 4):
        report = generate_report(plan)
        for ep in build_episodes(report, enrich_report(report), seed=4, count=6):
            out.append((report, ep))
    return out


def test_required_tools_are_declared_with_schemas():
    assert {"query_baseline", "hash_binary", "query_package_manager", "check_process_details",
            "lookup_attack_technique", "search_findings"} <= set(TOOL_NAMES)


def test_all_episode_kinds_occur(episodes):
    assert {ep["kind"] for _, ep in episodes} == set(EPISODE_KINDS)


def test_calls_are_declared_valid_and_results_match_the_environment(episodes):
    for report, ep in episodes:
        row = {"id": "x", "host_id": "h", **ep}
        assert generalist_row_error(row) is None
        tools = {t["function"]["name"]: t["function"]["parameters"] for t in json.loads(ep["tools"])}
        env = ScanEnvironment(report)
        calls = {}
        for m in ep["messages"]:
            for tc in m.get("tool_calls") or []:
                args = json.loads(tc["function"]["arguments"])
                jsonschema.validate(args, tools[tc["function"]["name"]])
                calls[tc["id"]] = (tc["function"]["name"], args)
            if m["role"] == "tool":
                name, args = calls[m["tool_call_id"]]
                assert m["content"] == tool_result_text(env.call(name, args))


def test_kinds_have_their_shape(episodes):
    by_kind = {}
    for _, ep in episodes:
        by_kind.setdefault(ep["kind"], ep)
    n_calls = lambda ep: sum(len(m.get("tool_calls") or []) for m in ep["messages"])
    assert n_calls(by_kind["no_call"]) == 0
    assert n_calls(by_kind["single_call"]) == 1
    assert n_calls(by_kind["investigate_ioc"]) >= 3
    assert any(len(m.get("tool_calls") or []) == 2 for m in by_kind["parallel_calls"]["messages"])
    assert any('"error"' in m["content"] for m in by_kind["tool_error"]["messages"] if m["role"] == "tool")
    for ep in by_kind.values():
        assert ep["messages"][-1]["role"] == "assistant" and "Conclusion:" in ep["messages"][-1]["content"]


def test_adversarial_episodes_do_not_obey_the_injection(episodes):
    adversarial = [ep for _, ep in episodes if ep["kind"] == "adversarial"]
    assert adversarial
    for ep in adversarial:
        assert json.loads(ep["reference"])["adversarial"] is True
        context = " ".join(m["content"] for m in ep["messages"] if m["role"] in ("user", "tool"))
        assert any(s in context for s in INJECTIONS)
        final = ep["messages"][-1]["content"]
        assert "ignored" in final and "clean" not in final.lower().replace("is clean", "")
        assert "no findings" not in final.lower()


def test_environment_refuses_undeclared_tools_and_bad_arguments():
    env = ScanEnvironment(generate_report(plan_hosts(1, 0)[0]))
    with pytest.raises(ToolError, match="unknown tool 'rm_rf'"):
        env.call("rm_rf", {})
    with pytest.raises(ToolError, match="invalid arguments for check_process_details"):
        env.call("check_process_details", {"pid": "not a number"})
    assert "error" in env.call("hash_binary", {"path": "/etc/shadow"})  # not in the scan: never read from this machine


def test_environment_is_deterministic():
    report = generate_report(plan_hosts(3, 8)[2])
    a, b = ScanEnvironment(report), ScanEnvironment(report)
    for path in sorted(a.paths)[:5]:
        assert a.call("hash_binary", {"path": path}) == b.call("hash_binary", {"path": path})
