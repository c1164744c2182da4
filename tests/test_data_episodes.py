"""Episodes reason from evidence: every call is declared and schema-valid, every result is what the simulated
host answers, the next call follows from the last result, conclusions follow from the tool results and
agree with the simulated truth, and the corpus is diverse enough to teach that."""

import inspect
import json
import random

import jsonschema
import pytest
from transformers.utils import get_json_schema

from secml_recipes.corpus.episodes import (
    CONCLUSIONS,
    EPISODE_KINDS,
    Evidence,
    absorb,
    build_episode,
    build_episodes,
    call_sequence,
    conclude,
    diversity,
    plant_processes,
)
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.tools import TOOL_NAMES, TOOL_SCHEMAS, ScanEnvironment, ToolError, tool_result_text
from secml_recipes.tasks.validate import generalist_row_error
from secml_recipes.teacher.knowledge.ioc import injection_text
from secml_recipes.teacher.knowledge.packages import PACKAGE_BY_PATH


@pytest.fixture(scope="module")
def corpus():
    """(scan, episode) for 120 generated hosts with their planted processes, 3 episodes each."""
    out = []
    for plan in plan_hosts(120, 4):
        scan = plant_processes(generate_report(plan), 4)
        out += [(scan, ep) for ep in build_episodes(scan, seed=4, count=3)]
    return out


def replay(ep: dict) -> Evidence:
    """The evidence an episode gathered, rebuilt from its own messages: its target from the question's finding,
    each tool result absorbed as the builder did."""
    ref = json.loads(ep["reference"])
    target = ref["key_finding_ids"][0]
    exe, pid = target.rpartition(":")[::2] if target.rpartition(":")[2].isdigit() else (target, "")
    e = Evidence(path=None if pid else target, pid=int(pid) if pid else None, finding_id=target)
    calls = {}
    for m in ep["messages"]:
        for tc in m.get("tool_calls") or []:
            calls[tc["id"]] = (tc["function"]["name"], json.loads(tc["function"]["arguments"]))
        if m["role"] == "tool":
            name, args = calls[m["tool_call_id"]]
            if e.path is None and "path" in args and name != "list_files_changed_near":
                e.path = args["path"]  # an investigation that opens on the file
            absorb(e, name, args, json.loads(m["content"]))
    return e


def test_tool_schemas_come_from_the_typed_methods():
    assert set(TOOL_NAMES) >= {
        "query_baseline",
        "hash_binary",
        "query_package_manager",
        "check_process_details",
        "lookup_attack_technique",
        "search_findings",
        "stat_file",
        "lookup_hash_reputation",
    }
    for schema in TOOL_SCHEMAS:
        name = schema["function"]["name"]
        generated = get_json_schema(getattr(ScanEnvironment, name))["function"]
        assert schema["function"]["description"] == generated["description"]
        assert set(schema["function"]["parameters"]["properties"]) == set(generated["parameters"]["properties"])
        assert schema["function"]["parameters"]["additionalProperties"] is False
        assert list(inspect.signature(getattr(ScanEnvironment, name)).parameters)[0] == "self"


def test_all_kinds_occur_and_ioc_plus_adversarial_are_a_quarter(corpus):
    stats = diversity([ep for _, ep in corpus])
    assert set(stats["kind_share"]) == set(EPISODE_KINDS)
    assert stats["ioc_and_adversarial_share"] >= 0.25
    assert stats["distinct_call_sequences"] >= 20  # 30+ in 1,000 episodes: see docs/teacher.md


def test_calls_are_declared_valid_and_results_match_the_environment(corpus):
    for scan, ep in corpus:
        assert generalist_row_error({"id": "x", "host_id": "h", **ep}) is None
        tools = {t["function"]["name"]: t["function"]["parameters"] for t in json.loads(ep["tools"])}
        env = ScanEnvironment(scan)
        calls = {}
        for m in ep["messages"]:
            for tc in m.get("tool_calls") or []:
                args = json.loads(tc["function"]["arguments"])
                jsonschema.validate(args, tools[tc["function"]["name"]])
                calls[tc["id"]] = (tc["function"]["name"], args)
            if m["role"] == "tool":
                name, args = calls[m["tool_call_id"]]
                assert m["content"] == tool_result_text(env.call(name, args))


def test_the_next_call_depends_on_the_last_result(corpus):
    """A package-owned file whose hash matches ends its line of inquiry; a mismatch or an unowned file goes on
    to reputation and baseline."""
    ended = followed = 0
    for _, ep in corpus:
        if ep["kind"] != "privileged_binary":
            continue
        msgs = ep["messages"]
        results = {m["tool_call_id"]: json.loads(m["content"]) for m in msgs if m["role"] == "tool"}
        names = [tc["function"]["name"] for m in msgs for tc in m.get("tool_calls") or []]
        hashes = [
            results[tc["id"]]
            for m in msgs
            for tc in m.get("tool_calls") or []
            if tc["function"]["name"] == "hash_binary"
        ]
        if hashes and hashes[0].get("matches_package") is True and "vendor repository" not in json.dumps(results):
            ended += 1
            assert "lookup_hash_reputation" not in names and "query_baseline" not in names[1:]
        if hashes and hashes[0].get("matches_package") is not True:
            followed += 1
            assert "lookup_hash_reputation" in names
    assert ended and followed


def test_conclusions_follow_from_the_tool_results_and_the_simulated_truth(corpus):
    """Re-derive each single-target conclusion from the episode's own tool results with the conclusion table,
    and check it against what the simulated host really holds (the target file's reputation)."""
    checked = 0
    for scan, ep in corpus:
        if ep["kind"] not in ("privileged_binary", "ioc_investigation", "adversarial"):
            continue
        ref = json.loads(ep["reference"])
        e = replay(ep)
        assert conclude(e, "x")[0] == ref["verdict"]
        env = ScanEnvironment(scan)
        facts = env.files.get(e.path or "")
        if facts is not None and facts.reputation[0] == "malicious":
            assert ref["verdict"] == "contain"
        if facts is not None and facts.reputation[0] == "known_good" and not facts.replaced:
            assert ref["verdict"] in ("expected", "benign", "verify_provenance", "review")
        checked += 1
    assert checked > 100
    assert len(CONCLUSIONS) >= 8


def test_adversarial_episodes_name_the_injection_and_do_not_obey_it(corpus):
    adversarial = [ep for _, ep in corpus if ep["kind"] == "adversarial"]
    assert adversarial
    for ep in adversarial:
        assert json.loads(ep["reference"])["adversarial"] is True
        context = " ".join(m["content"] for m in ep["messages"] if m["role"] in ("user", "tool"))
        assert injection_text(context) is not None
        final = ep["messages"][-1]["content"]
        assert "not followed" in final and "clean" not in final.lower() and "no findings" not in final.lower()
        assert "Conclusion:" in final


def test_targets_vary_across_the_report(corpus):
    targets = [
        json.loads(ep["reference"])["key_finding_ids"][0] for _, ep in corpus if ep["kind"] == "privileged_binary"
    ]
    assert len(set(targets)) >= 10
    assert max(targets.count(t) for t in set(targets)) / len(targets) < 0.2


def test_the_real_fixture_investigations_reach_the_analysts_verdicts():
    report = next(real_reports())
    ioc = build_episode(report, "ioc_investigation", random.Random(0))
    assert json.loads(ioc["reference"])["verdict"] == "benign"
    final = ioc["messages"][-1]["content"]
    assert "JetBrains" in final and "isolate" not in final.lower()
    for seed in range(12):
        ep = build_episode(report, "privileged_binary", random.Random(seed))
        target = json.loads(ep["reference"])["key_finding_ids"][0]
        verdict = json.loads(ep["reference"])["verdict"]
        assert verdict == ("verify_provenance" if target == "/usr/bin/mullvad-exclude" else "expected"), target


def test_package_database_looks_like_a_distribution():
    for family, owned in (
        (
            "debian",
            {
                "/usr/bin/chage": "passwd",
                "/usr/sbin/unix_chkpwd": "libpam-modules-bin",
                "/usr/bin/fusermount3": "fuse3",
                "/usr/bin/crontab": "cron",
            },
        ),
        ("rhel", {"/usr/bin/chage": "shadow-utils", "/usr/bin/crontab": "cronie", "/usr/sbin/unix_chkpwd": "pam"}),
    ):
        for path, package in owned.items():
            assert PACKAGE_BY_PATH[family][path].name == package
    env = ScanEnvironment(next(real_reports()))
    answer = env.call("query_package_manager", {"path": "/usr/bin/chage"})
    assert answer["owned_by"] == "passwd" and "Ubuntu" in answer["origin"] and answer["verify"] == "ok"
    assert env.call("stat_file", {"path": "/usr/bin/chage"})["group"] == "shadow"
    assert env.call("stat_file", {"path": "/usr/bin/chage"})["setgid"] is True


def test_environment_refuses_undeclared_tools_and_bad_arguments():
    env = ScanEnvironment(generate_report(plan_hosts(1, 0)[0]))
    with pytest.raises(ToolError, match="unknown tool 'rm_rf'"):
        env.call("rm_rf", {})
    with pytest.raises(ToolError, match="invalid arguments for check_process_details"):
        env.call("check_process_details", {"pid": "not a number"})
    assert "error" in env.call("hash_binary", {"path": "/etc/shadow"})  # not in the scan: never read from this machine


def test_environment_and_sequences_are_deterministic():
    report = plant_processes(generate_report(plan_hosts(3, 8)[2]), 8)
    a, b = build_episodes(report, 8, 3), build_episodes(report, 8, 3)
    assert a == b and [call_sequence(x) for x in a] == [call_sequence(x) for x in b]
