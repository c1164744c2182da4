"""Episodes reason from evidence: every call is declared and schema-valid, every result is what the simulated
host answers, the next call follows from the last result, conclusions follow from the tool results and
agree with the simulated truth, and the corpus is diverse enough to teach that."""

import copy
import inspect
import json
import random
import subprocess
from pathlib import Path

import jsonschema
import pytest
from transformers.utils import get_json_schema

from secml_recipes.corpus.episodes import (
    CONCLUSIONS,
    CONDITIONS,
    EPISODE_KINDS,
    RULES,
    Evidence,
    Scan,
    absorb,
    add_ioc_findings,
    agrees_with_teacher,
    behaviour,
    build_episode,
    build_episodes,
    call_sequence,
    conclude,
    diversity,
    ioc_finding,
    next_call,
    plant_processes,
)
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.behaviours import INJECTIONS, SAMPLES
from secml_recipes.tasks.tools import TOOL_NAMES, TOOL_SCHEMAS, ScanEnvironment, ToolError, tool_result_text
from secml_recipes.tasks.validate import generalist_row_error
from secml_recipes.teacher.assess import Host
from secml_recipes.teacher.knowledge import debian_files
from secml_recipes.teacher.knowledge.ioc import injection_text
from secml_recipes.teacher.knowledge.packages import PACKAGE_BY_PATH, Package, owning_package

_ENVS: dict[int, ScanEnvironment] = {}


def _env(scan: dict) -> ScanEnvironment:
    """One simulated host per scan (its answers never depend on what was asked before)."""
    if id(scan) not in _ENVS:
        _ENVS[id(scan)] = ScanEnvironment(scan)
    return _ENVS[id(scan)]


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
        env = _env(scan)
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
        env = _env(scan)
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


# -- branching on evidence, the package database, behaviour, the specialist's verdict -----------------------


def _after_process(result: dict) -> str | None:
    """The tool the rule table picks after an IOC's process details came back as `result`."""
    e = Evidence(pid=result["pid"], finding_id=f"{result['exe']}:{result['pid']}")
    absorb(e, "check_process_details", {"pid": result["pid"]}, result)
    step = next_call(e)
    return step[0] if step else None


def test_same_start_different_result_different_next_call():
    """One opening call (the process behind an IOC); what it returns picks the next call: a socket leads to the
    remote end, a deleted executable to its package, a cron parent to what launched it, a kernel-thread title
    with an executable to its launcher, a plain packaged daemon to the package manager."""
    base = {"pid": 4242, "user": "root", "uid": "0", "ppid": 1, "started": "2025-09-01 10:00", "sockets": []}
    results = {
        "socket": {**base, "exe": "/opt/x/agent", "cmdline": "agent", "parent": "/usr/lib/systemd/systemd",
                   "sockets": ["tcp ESTABLISHED 10.0.2.15:40000 -> 203.0.113.7:8443"]},
        "deleted": {**base, "exe": "/usr/sbin/rsyslogd (deleted)", "cmdline": "/usr/sbin/rsyslogd -n",
                    "parent": "/usr/lib/systemd/systemd"},
        "cron parent": {**base, "exe": "/var/lib/.x/run", "cmdline": "run", "parent": "/usr/sbin/cron -f"},
        "kernel title": {**base, "exe": "/var/lib/.x/kw", "cmdline": "[kworker/0:1-events]",
                         "parent": "/usr/lib/systemd/systemd"},
        "plain": {**base, "exe": "/usr/sbin/cupsd", "cmdline": "/usr/sbin/cupsd -l",
                  "parent": "/usr/lib/systemd/systemd"},
    }  # fmt: skip
    picked = {name: _after_process(r) for name, r in results.items()}
    assert picked == {
        "socket": "inspect_connection",
        "deleted": "query_package_manager",
        "cron parent": "find_process_origin",
        "kernel title": "find_process_origin",
        "plain": "query_package_manager",
    }
    # the deleted file's package: owned and verifying -> what changed with it (an upgrade?); unowned -> not that
    owned = Evidence(pid=4242)
    absorb(owned, "check_process_details", {"pid": 4242}, results["deleted"])
    unowned = copy.deepcopy(owned)
    path = {"path": "/usr/sbin/rsyslogd"}
    absorb(owned, "query_package_manager", path, {**path, "owned_by": "rsyslog", "version": "8", "verify": "ok"})
    absorb(unowned, "query_package_manager", path, {**path, "owned_by": None, "note": "no package owns this path"})
    assert next_call(owned)[0] == "list_files_changed_near"
    assert next_call(unowned)[0] != "list_files_changed_near"


def test_rule_table_names_only_known_conditions_tools_and_values():
    for r in RULES:
        assert r["call"] in TOOL_NAMES and (r["after"] == "any" or r["after"] in TOOL_NAMES)
        assert all(name.removeprefix("not ") in CONDITIONS for name in r["when"])
    assert {"find_process_origin", "inspect_connection", "list_files_changed_near"} <= {r["call"] for r in RULES}


def test_package_database_owns_what_debian_ships():
    """The named gaps: /etc/crontab, /etc/profile and /usr/bin/find have owners, as on a real Debian host
    (Debian 12 moved /etc/crontab into cron-daemon-common, which cron depends on; base-files' postinst copies
    /etc/profile into place, so dpkg -S cannot list it and the answer says so)."""
    for path, package in {
        "/etc/crontab": "cron-daemon-common",
        "/usr/bin/crontab": "cron",
        "/etc/profile": "base-files",
        "/usr/bin/find": "findutils",
        "/bin/find": "findutils",
        "/usr/bin/bash": "bash",
        "/usr/sbin/sshd": "openssh-server",
        "/usr/lib/systemd/system/cron.service": "cron",
        "/usr/bin/ps": "procps",
        "/usr/sbin/irqbalance": "irqbalance",
    }.items():
        assert (owning_package(path, "debian") or Package("none", "", "")).name == package, path
    assert owning_package("/etc/shadow", "debian") is None  # created by passwd's scripts from nothing: no owner
    assert debian_files.INSTALLED_BY_SCRIPTS["/etc/profile"]["source"] == "/usr/share/base-files/profile"
    assert len(debian_files.FILES) > 1000 and set(debian_files.VERSIONS) == set(debian_files._DATA["packages"])
    env = ScanEnvironment(next(real_reports()))
    profile = env.call("query_package_manager", {"path": "/etc/profile"})
    assert profile["owned_by"] == "base-files" and "maintainer script" in profile["note"]
    assert env.call("query_package_manager", {"path": "/etc/crontab"})["owned_by"] == "cron-daemon-common"
    assert env.call("hash_binary", {"path": "/usr/bin/find"})["matches_package"] is True


def test_package_file_listing_parses_dpkg_deb_output(monkeypatch):
    listing = (
        "drwxr-xr-x root/root         0 2023-01-08 18:07 ./usr/bin/\n"
        "-rwxr-xr-x root/root    224848 2023-01-08 18:07 ./usr/bin/find\n"
        "-rwxr-xr-x root/root    100000 2023-01-08 18:07 ./bin/ls\n"
        "lrwxrwxrwx root/root         0 2023-01-08 18:07 ./sbin/getty -> agetty\n"
        "-rw-r--r-- root/root      1000 2023-01-08 18:07 ./usr/share/doc/findutils/copyright\n"
    )
    monkeypatch.setattr(
        debian_files.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listing)
    )
    assert debian_files.package_files(Path("findutils.deb")) == ["/usr/bin/find", "/usr/bin/ls", "/usr/sbin/getty"]


def _host_with(sample, seed: int = 3) -> dict:
    """A generated Debian-family host with one behaviour sample's process, as its IOC finding."""
    report = next(r for r in map(generate_report, plan_hosts(40, seed)) if Host.from_report(r).family == "debian")
    user = report["meta"].get("user") or "dev"
    filled = sample.filled(f"/home/{user}", user)
    exe = filled.exe + (" (deleted)" if filled.deleted else "")
    return add_ioc_findings(report, [ioc_finding(exe, 31337, filled.argv0, bool(filled.loader))])


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.exe.rsplit("/", 1)[-1])
def test_compromises_are_seen_through_behaviour(sample):
    """Every malicious sample is contained because of what its process does (its launcher, its parent, its
    connection, its loader, what changed with it), even with the hash lookup taken away; the benign look-alike
    (a vendor backup agent with LD_LIBRARY_PATH) is not."""
    report = _host_with(sample)
    finding = next(
        f for r in report["results"] if r["scanner"] == "ioc" for f in r["findings"] if f["id"].endswith(":31337")
    )
    verdicts, scan = [], Scan.of(report)
    for seed in range(40):
        ep = build_episode(report, "ioc_investigation", random.Random(seed), scan)
        ref = json.loads(ep["reference"])
        if ref["key_finding_ids"] != [finding["id"]]:
            continue
        if len(verdicts) == 2:
            break
        e = replay(ep)
        e.reputation = None  # what the tools showed of its behaviour alone
        strong, weak = behaviour(e)
        verdicts.append(ref["verdict"])
        if sample.malicious:
            assert ref["verdict"] == "contain", ep["messages"][-1]["content"]
            assert strong or len(weak) >= 2, call_sequence(ep)
        else:
            assert ref["verdict"] != "contain" and not strong, ep["messages"][-1]["content"]
    assert verdicts, "the sample's finding was never the episode's target"


def test_deleted_stock_daemon_after_an_upgrade_is_review_like_the_specialist():
    """The generator's upgraded daemons (a stock executable replaced under a running process): the episode
    follows the package, what changed with it and the unit, and ends in the specialist's `review`, never in
    isolating the host."""
    seen = 0
    for plan in plan_hosts(60, 11):
        report = generate_report(plan)
        deleted = [f for r in report["results"] if r["scanner"] == "ioc" for f in r["findings"]
                   if f["metadata"].get("deleted_executable") and f["id"].startswith("/usr/")]  # fmt: skip
        if not deleted or "debian" not in (Host.from_report(report).family,):
            continue
        scan = Scan.of(report)
        for seed in range(6):
            ep = build_episode(report, "ioc_investigation", random.Random(seed), scan)
            ref = json.loads(ep["reference"])
            if ref["key_finding_ids"][0] not in {f["id"] for f in deleted}:
                continue
            seen += 1
            assert ref["teacher_verdict"] == "review" and ref["verdict"] == "review", ep["messages"][-1]["content"]
            assert "isolate" not in ep["messages"][-1]["content"].lower()
            assert "list_files_changed_near" in call_sequence(ep) and "find_process_origin" in call_sequence(ep)
        if seen >= 3:
            break
    assert seen >= 3


def test_episodes_agree_with_the_specialists_verdict(corpus):
    """Each single-finding episode reaches a verdict the specialist's verdict on that finding allows; a
    contained finding is never called anything milder."""
    checked = 0
    for _, ep in corpus:
        ref = json.loads(ep["reference"])
        if ref["teacher_verdict"] is None or ep["kind"] in ("triage", "baseline_drift"):
            continue
        checked += 1
        assert agrees_with_teacher(ref["verdict"], ref["teacher_verdict"]), (ep["kind"], ref, call_sequence(ep))
    assert checked > 200


def test_at_least_half_the_episodes_depend_on_a_tool_result(corpus):
    """Measured while building: an episode depends on a result when another answer the host gives to the same
    call (about another of its processes, files, hashes, remote ends) would have changed the next call."""
    episodes = [ep for _, ep in corpus]
    assert diversity(episodes)["result_dependent_share"] >= 0.5
    for ep in episodes:
        if call_sequence(ep) == "(none)":
            assert json.loads(ep["reference"])["branch_points"] == 0
    assert len({call_sequence(ep) for ep in episodes}) >= 30


def test_injections_and_samples_are_recognised_and_planted():
    assert len(INJECTIONS) >= 8 and all(injection_text(text) for text in INJECTIONS)
    planted = [plant_processes(generate_report(p), 5) for p in plan_hosts(40, 5)]
    exes = {f["id"].rsplit(":", 1)[0].replace(" (deleted)", "") for r in planted for res in r["results"]
            if res["scanner"] == "ioc" for f in res["findings"]}  # fmt: skip
    assert sum(any(s.exe.replace("{home}", "") in x or s.exe == x for x in exes) for s in SAMPLES) >= 3
