"""The teacher never teaches advice that breaks, weakens or destroys: stock units from the packages' own unit lists,
no sandboxing of login/bus/update units, IOC units as evidence, stricter sysctls kept, ip_forward judged from the
scan's modules and services, containment before restarts and hygiene, GTFOBins set-id binaries contained, writable
autostart files read before they are fixed, correlations only from suspicious findings joined by pid, and actions
merged by meaning. Each class on generated hosts and on findings built like 5.0.0's."""

import copy
import json
import re
from pathlib import Path

import pytest

from secml_recipes.scan import catalog, legacy
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.teacher.assess import Host, assess_finding
from secml_recipes.teacher.enrich import build_enrichment
from secml_recipes.teacher.knowledge.units import breaking_class, packaged_unit

DEBIAN = Host("web-07a", "debian", "Ubuntu 24.04", "root", "0", {})


@pytest.fixture(scope="module")
def generated():
    """Enrichments of generated hosts of every profile (about 60 hosts, a third of them --hardening)."""
    out = []
    for plan in plan_hosts(60, 7):
        report = generate_report(plan)
        out.append((plan, report, build_enrichment(report)))
    return out


def unit_finding(unit: str, key: str, expected: str = "yes", **meta) -> dict:
    return {
        "id": f"systemd:{key}:{unit}",
        "title": f"{unit} {key}",
        "severity": "low",
        "description": f"{key} not set (missing)",
        "metadata": {"unit": unit, "key": key, "expected": expected, **meta},
    }


def ioc(exe: str, pid: int, severity: str = "medium", **flags) -> dict:
    return {
        "id": f"{exe}:{pid}",
        "title": "Process IOC Detected",
        "severity": severity,
        "description": f"Process with suspicious patterns: {exe}",
        "metadata": {"pid": str(pid), **{k: str(v) for k, v in flags.items()}},
    }


def socket(pid: int, exe: str, inode: int, rip: str = "34.107.221.82") -> dict:
    return {
        "id": f"tcp:{40000 + inode % 1000}:{inode}",
        "title": "tcp ESTABLISHED",
        "severity": "info",
        "description": "TCP socket",
        "metadata": {
            "protocol": "tcp",
            "state": "ESTABLISHED",
            "lip": "192.168.1.23",
            "lport": str(40000 + inode % 1000),
            "rip": rip,
            "rport": "443",
            "inode": str(inode),
            "pid": str(pid),
            "exe": exe,
        },
    }


def with_results(report: dict, scanner: str, findings: list[dict]) -> dict:
    report = copy.deepcopy(report)
    report["results"] = [r for r in report["results"] if r["scanner"] != scanner]
    report["results"].append({"scanner": scanner, "finding_count": len(findings), "findings": findings})
    return report


# -- stock units come from the packages' unit lists ---------------------------------------------------------


def test_every_unit_the_generator_ships_as_stock_is_in_its_familys_packaged_list(generated):
    hardening = 0
    for _, report, _ in generated:
        host_family = "rhel" if report["meta"].get("os_id") in ("rhel", "fedora") else "debian"
        units = [f for r in report["results"] if r["scanner"] == "systemd_units" for f in r["findings"]]
        hardening += bool(units)
        stock = {name for name, *_ in catalog.UNITS}
        for f in units:
            unit = f["metadata"]["unit"]
            if unit in stock:
                assert packaged_unit(unit, host_family), f"{unit} on a {host_family} host"
    assert hardening >= 10


def test_hardening_hosts_never_call_a_packaged_unit_custom(generated):
    listed = 0
    for _, report, enrichment in generated:
        family = "rhel" if report["meta"].get("os_id") in ("rhel", "fedora") else "debian"
        for f in enrichment.output["enriched_findings"]:
            if any("not a distribution unit" in line for line in f["rationale"]):
                listed += 1
                assert not packaged_unit(f["id"].split(":", 2)[2], family), f["id"]
    assert listed < 60  # only the generator's few custom units (app.service, legacy-app.service, ...)


@pytest.mark.parametrize(
    "unit,family,package",
    [
        ("getty@tty1.service", "debian", "systemd"),
        ("user@1000.service", "rhel", "systemd"),
        ("display-manager.service", "debian", "gdm3"),
        ("sshd.service", "debian", "openssh-server"),
        ("crond.service", "rhel", "cronie"),
        ("snap.lxd.daemon.service", "debian", "snapd"),
        ("xmrig.service", "debian", None),
        ("crond.service", "debian", None),
    ],
)
def test_packaged_units_answer_per_family(unit, family, package):
    assert packaged_unit(unit, family) == package


# -- no sandboxing that breaks logins, sudo, the bus or updates ----------------------------------------------


@pytest.mark.parametrize(
    "unit,key",
    [
        ("lxdm.service", "NoNewPrivileges"),  # a display manager no Debian package ships
        ("sshd@3-10.0.0.1:22-10.0.0.2:5000.service", "ProtectHome"),  # per-connection sshd, not a Debian unit
        ("dnf-automatic-install.service", "ProtectSystem"),  # an RHEL updater on a Debian host: still an updater
        ("polkitd.service", "NoNewPrivileges"),
    ],
)
def test_units_that_start_sessions_or_must_write_get_no_sandboxing_advice(unit, key):
    a = assess_finding("systemd_units", unit_finding(unit, key, "strict" if key == "ProtectSystem" else "yes"), DEBIAN)
    assert breaking_class(unit, key) is not None
    assert a.verdict == "expected" and a.action is None
    assert "systemd.exec(5)" in " ".join(a.rationale) or "never add" in " ".join(a.rationale)


def test_no_generated_host_is_told_to_sandbox_a_login_bus_or_update_unit(generated):
    judged = 0
    for _, _, enrichment in generated:
        for item in enrichment.items:
            if item.scanner == "systemd_units" and item.finding["severity"] != "info":
                judged += 1
                if breaking_class(item.finding["metadata"]["unit"], item.finding["metadata"]["key"]):
                    assert item.assessment.verdict in ("expected", "contain", "investigate"), item.id
                    assert not item.assessment.action or "drop-in" not in item.assessment.action, item.id
    assert judged >= 1000


# -- units tied to an IOC are evidence ------------------------------------------------------------------------


def test_an_ioc_unit_is_evidence_never_hardening():
    host = copy.copy(DEBIAN)
    host.suspects = (("/tmp/.x/kworkerd", "4242", "contain"),)
    named = assess_finding("systemd_units", unit_finding("xmrig.service", "NoNewPrivileges"), host)
    assert named.verdict == "contain" and "drop-in" not in named.action
    assert named.action.index("systemctl cat") < named.action.index("disable")
    runs = assess_finding(
        "systemd_units", unit_finding("kernel-helper.service", "ProtectSystem", ExecStart="/tmp/.x/kworkerd"), host
    )
    assert runs.verdict == "contain" and "ExecStart" in runs.rationale[0]
    unknown = assess_finding("systemd_units", unit_finding("dbus-update.service", "PrivateTmp"), host)
    assert unknown.verdict == "investigate" and "drop-in" not in unknown.action
    # a packaged unit whose name the malware borrows stays stock
    stock = assess_finding("systemd_units", unit_finding("ssh.service", "NoNewPrivileges"), host)
    assert stock.verdict == "expected"


def test_compromised_hosts_get_no_hardening_for_their_units(generated):
    for _, _, enrichment in generated:
        for action in enrichment.output["actions"]:
            assert not re.search(r"drop-in for (xmrig|minerd|kernel-helper|dbus-update|user-update)", action["action"])


# -- correlations only from suspicious findings, joined by pid; a clean laptop stays clean ---------------------


def laptop_with_snap_firefox() -> dict:
    """The real fixture's laptop with what a full scan of it also shows: snap Firefox processes flagged for a
    loader variable and their HTTPS connections."""
    report = next(real_reports())
    exe = "/snap/firefox/5437/usr/lib/firefox/firefox"
    pids = [4101, 4187, 4188, 4190, 4231, 4233, 4301, 4302]
    iocs = [ioc(exe, pid, environment_issue="true", command=exe) for pid in pids]
    iocs += [f for r in report["results"] if r["scanner"] == "ioc" for f in r["findings"]]
    report = with_results(report, "ioc", iocs)
    sockets = [socket(4101, exe, 9000 + n) for n in range(10)] + [socket(4187, exe, 9100)]
    return with_results(report, "network", sockets)


def test_a_clean_laptop_with_snap_firefox_and_https_is_not_above_medium():
    out = build_enrichment(laptop_with_snap_firefox()).output
    assert out["summaries"]["analyst"]["risk_level"] in ("low", "medium")
    assert not [c for c in out["correlations"] if "network" in c["id"]]
    actions = [a["action"] for a in out["actions"]]
    assert any("mullvad-exclude" in a for a in actions)  # the one that matters stays visible
    assert sum("snap list firefox" in a for a in actions) == 1  # eight pids, one check


def test_a_deb_browser_with_a_loader_variable_and_its_own_sockets_is_not_above_medium():
    exe = "/usr/lib/firefox/firefox"
    report = with_results(next(real_reports()), "ioc", [ioc(exe, 5001, environment_issue="true", command=exe)])
    report = with_results(report, "network", [socket(5001, exe, n) for n in range(6)])
    out = build_enrichment(report).output
    assert out["summaries"]["analyst"]["risk_level"] in ("low", "medium") and not out["correlations"]


def test_process_network_correlation_needs_a_suspicious_process_and_its_own_pid():
    report = next(real_reports())
    miner = ioc("/tmp/.x/xmrig", 777, "high", command="/tmp/.x/xmrig -o stratum+tcp://p:4444", pattern_match="true")
    report = with_results(report, "ioc", [miner, ioc("/tmp/.x/xmrig", 778, "high", pattern_match="true")])
    report = with_results(report, "network", [socket(777, "/tmp/.x/xmrig", 1), socket(999, "/tmp/.x/xmrig", 2)])
    out = build_enrichment(report).output
    network = [c for c in out["correlations"] if c["id"].startswith("corr:ioc_process_network")]
    assert [c["related_finding_ids"] for c in network] == [sorted(["/tmp/.x/xmrig:777", "tcp:40001:1"])]
    assert "pid 777" in network[0]["rationale"] and "999" not in network[0]["rationale"]


# -- sysctls: stricter than desired is kept ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,value,desired,family",
    [
        ("/proc/sys/kernel/kptr_restrict", "2", "1", "rhel"),
        ("/proc/sys/net/ipv4/conf/all/rp_filter", "1", "2", "debian"),
    ],
)
def test_a_sysctl_stricter_than_desired_is_accepted(path, value, desired, family):
    f = {
        "id": path,
        "title": path,
        "severity": "low",
        "description": "",
        "metadata": {"current": value, "desired": desired, "status": "mismatch"},
    }
    a = assess_finding("kernel_params", f, Host("h", family, "a distribution", "root", "0", {}))
    assert a.verdict == "expected" and a.action is None and "stricter" in a.rationale[0]


# -- ip_forward from modules and services ----------------------------------------------------------------------


def forward_finding() -> dict:
    return {
        "id": "/proc/sys/net/ipv4/ip_forward",
        "title": "ip_forward",
        "severity": "low",
        "description": "IP forwarding",
        "metadata": {"current": "1", "desired": "0", "status": "mismatch"},
    }


@pytest.mark.parametrize(
    "modules,services",
    [({"br_netfilter", "overlay"}, set()), (set(), {"snap.lxd.daemon.service"}), (set(), {"kubelet"})],
)
def test_ip_forward_with_a_user_of_it_is_expected(modules, services):
    host = copy.copy(DEBIAN)
    host.modules, host.services = frozenset(modules), frozenset(services)
    a = assess_finding("kernel_params", forward_finding(), host)
    assert a.verdict == "expected" and a.action is None


def test_ip_forward_without_evidence_checks_every_runtime_before_any_change():
    a = assess_finding("kernel_params", forward_finding(), DEBIAN)
    assert a.verdict == "review"
    for name in ("containerd", "kubelet", "podman", "snap.lxd.daemon", "incus", "libvirtd", "br_netfilter", "nmcli"):
        assert name in a.action
    assert a.action.index("Leave it on") < a.action.index("ip_forward = 0")


def test_no_container_host_is_told_to_turn_forwarding_off(generated):
    for plan, _, enrichment in generated:
        if plan.profile == "container_host":
            assert not any("ip_forward = 0" in a["action"] for a in enrichment.output["actions"])


# -- containment first ------------------------------------------------------------------------------------------


def test_containment_comes_before_hygiene_and_evidence_before_any_restart(generated):
    compromised = 0
    for _, _, enrichment in generated:
        verdicts = {(i.scanner, i.id): i.assessment.verdict for i in enrichment.items}
        order = [verdicts[t] for t in enrichment.action_targets]
        if "contain" in order:
            compromised += 1
            last_contain = max(n for n, v in enumerate(order) if v == "contain")
            assert all(v == "contain" for v in order[: last_contain + 1]), order
        for action in enrichment.output["actions"]:
            text = action["action"]
            if re.search(r"\brestart\b", text, re.I) and "/proc/" in text:
                assert text.index("cp /proc/") < text.lower().index("restart the service"), text
    assert compromised >= 3


def test_a_deleted_daemon_on_a_compromised_host_keeps_its_memory_and_logs():
    host = copy.copy(DEBIAN)
    host.suspects = (("/tmp/.x/kworkerd", "4242", "contain"),)
    a = assess_finding("ioc", ioc("/usr/sbin/cupsd (deleted)", 812, "high", deleted_executable="true"), host)
    assert a.verdict == "review"
    for step in ("cp /proc/812/exe", "gcore 812", "journalctl _PID=812"):
        assert a.action.index(step) < a.action.index("restart the service")


# -- set-id binaries that hand out a shell ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/usr/bin/find", "/usr/bin/python3.12", "/usr/local/bin/bash", "/usr/bin/vim.basic"])
def test_gtfobins_setid_binaries_are_contained_after_preserving_evidence(path):
    f = {"id": path, "title": "SUID/SGID binary", "severity": "medium", "description": "SUID or SGID bit set"}
    a = assess_finding("suid_sgid", f, DEBIAN)
    assert a.verdict == "contain" and "Verify provenance" not in a.action
    assert a.action.index("sha256sum") < a.action.index("chmod u-s") and "who set it" in a.action


def test_stock_setid_binaries_stay_stock():
    for path in ("/usr/bin/su", "/usr/bin/mount", "/usr/bin/sudo"):
        f = {"id": path, "title": "SUID/SGID binary", "severity": "medium", "description": "SUID or SGID bit set"}
        assert assess_finding("suid_sgid", f, DEBIAN).verdict == "expected"


# -- world-writable autostart files: read first ---------------------------------------------------------------------


def test_a_world_writable_ld_so_preload_is_read_before_its_mode_is_fixed():
    f = {"id": "/etc/ld.so.preload", "title": "World-writable file", "severity": "medium", "description": "ww"}
    a = assess_finding("world_writable", f, DEBIAN)
    assert a.action.index("cat /etc/ld.so.preload") < a.action.index("chmod")
    assert "dpkg -S" in a.action and "T1574.006" in a.techniques


# -- actions merged by meaning -------------------------------------------------------------------------------------


def test_one_executable_in_many_pids_is_one_check_and_one_unit_one_drop_in():
    report = next(real_reports())
    exe = "/opt/tool/bin/agent"
    report = with_results(report, "ioc", [ioc(exe, pid, pattern_match="true") for pid in (11, 12, 13, 14)])
    units = [unit_finding("webapp.service", k) for k in ("NoNewPrivileges", "ProtectSystem")]
    units[1]["metadata"]["expected"] = "strict"
    report = with_results(report, "systemd_units", units)
    actions = [a["action"] for a in build_enrichment(report).output["actions"]]
    checks = [a for a in actions if exe in a]
    assert len(checks) == 1 and "11, 12, 13, 14" in checks[0]
    drop_ins = [a for a in actions if "webapp.service" in a]
    assert len(drop_ins) == 1 and "NoNewPrivileges=yes" in drop_ins[0] and "ProtectSystem=strict" in drop_ins[0]


def test_a_converted_real_0_1_0_scan_checks_each_executable_once_and_stays_low():
    old = json.loads((Path(__file__).parent / "fixtures" / "sys-scan-0.1.0-scans" / "ioc_report.json").read_text())
    out = build_enrichment(legacy.convert(old)[0]).output
    checks = [a["action"] for a in out["actions"] if a["action"].startswith("Check ")]
    exes = [re.match(r"Check (\S+)", a).group(1) for a in checks]
    assert checks and len(exes) == len(set(exes))
    assert any("pids " in a for a in checks)  # cpptools-srv runs as two pids: one check names both
    assert out["summaries"]["analyst"]["risk_level"] == "low" and not out["correlations"]


def test_an_in_tree_module_past_the_scanners_read_bound_is_not_an_alarm():
    """sys-scan reads the first 2 MiB of a compressed module: xfs's signature sits further in, so the anomalies-only
    scan calls it unsigned; the independent judge called hardened hosts rated high for it a false alarm."""
    xfs = {
        "id": "xfs",
        "title": "Module anomaly: xfs",
        "severity": "high",
        "description": "Unsigned kernel module detected",
        "metadata": {"unsigned": "true", "path": "/lib/modules/6.8.0-45-generic/kernel/fs/xfs/xfs.ko.zst"},
    }
    a = assess_finding("modules", xfs, DEBIAN)
    assert a.verdict == "informational" and not a.listed and "2 MiB" in " ".join(a.rationale)
    unknown = copy.deepcopy(xfs) | {"id": "hidemod"}
    unknown["metadata"]["path"] = "/lib/modules/6.8.0-45-generic/extra/hidemod.ko"
    assert assess_finding("modules", unknown, DEBIAN).verdict == "investigate"
