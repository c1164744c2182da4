"""The analyst's verdict on one finding: expected or not, why, what would confirm or clear it, what to do.

`RULES` maps a scanner (and a condition on the finding) to the assessor that judges it; each assessor
looks facts up in `knowledge/` and returns an `Assessment`. `VERDICTS` says what each verdict means for
risk and for the host. The teacher (`enrich.py`), the evaluation's harmful-action rate and the tool
episodes all judge findings through `assess_finding`, so they can never disagree.

Verdicts: `expected` (stock behaviour, no action), `informational` (inventory, no action), `operational`
(the scanner failed: a coverage gap), `review` (needs context, no change unless it is unexplained),
`harden` (a safe configuration fix), `verify_provenance` (a privileged binary from outside the
distribution: owning package, vendor, hash), `investigate` (evidence that needs confirming before anyone
acts), `contain` (evidence of compromise: isolate, preserve, then eradicate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secml_recipes.teacher.knowledge import ioc as ioc_facts
from secml_recipes.teacher.knowledge.autostart import autostart_file
from secml_recipes.teacher.knowledge.hosts import DISTRO_NAMES, PACKAGE_TOOLS, os_family, os_label
from secml_recipes.teacher.knowledge.modules import (
    KERNEL_TAINT_BITS,
    MODULE_TAINTS,
    OVERSIZED_INTREE_MODULES,
    rootkit_module,
    taint_bits,
    vendor_module,
)
from secml_recipes.teacher.knowledge.packages import owning_package
from secml_recipes.teacher.knowledge.privileged import (
    bit_phrase,
    shell_escape,
    stock_capability,
    stock_elsewhere,
    stock_privileged,
    third_party,
)
from secml_recipes.teacher.knowledge.scanner import FLAG_MEANINGS
from secml_recipes.teacher.knowledge.sysctl import (
    FORWARDING_CHECK,
    SYSCTLS,
    forwarding_users,
    is_stock_value,
    stricter_than,
    sysctl_name,
)
from secml_recipes.teacher.knowledge.units import breaking_class, packaged_unit

LEVELS = ["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class Verdict:
    expected: bool  # stock or inventory: acting on it is never right
    level: str  # the host risk level this verdict implies by default
    subscores: tuple  # sys-scan-agent scale: impact 0-10, exposure 0-3, anomaly 0-2, confidence 0-1
    probability: float  # probability_actionable: the share of such findings an analyst acts on
    rank: int  # action priority (higher first)


VERDICTS = {
    "expected": Verdict(True, "low", (2.0, 0.5, 0.0, 0.9), 0.03, 0),
    "informational": Verdict(True, "low", (1.0, 0.0, 0.0, 0.9), 0.02, 0),
    "operational": Verdict(False, "low", (1.0, 0.0, 0.0, 0.9), 0.1, 1),
    "review": Verdict(False, "low", (3.0, 1.0, 0.5, 0.7), 0.3, 2),
    "harden": Verdict(False, "low", (4.0, 1.0, 0.5, 0.9), 0.6, 3),
    "verify_provenance": Verdict(False, "medium", (6.5, 1.5, 1.0, 0.8), 0.7, 4),
    "investigate": Verdict(False, "medium", (6.0, 1.5, 1.2, 0.75), 0.75, 5),
    "contain": Verdict(False, "critical", (9.0, 2.5, 2.0, 0.9), 0.95, 6),
}
CATEGORY_BY_SCANNER = {  # sys-scan-agent's category names (utils.CAT_MAP) where it has one
    "processes": "process",
    "network": "network_socket",
    "kernel_params": "kernel_param",
    "modules": "kernel_module",
    "world_writable": "filesystem",
    "suid_sgid": "privilege_escalation_surface",
    "ioc": "ioc",
    "mac": "mac",
    "mounts": "filesystem",
    "kernel_hardening": "kernel_param",
    "systemd_units": "service_hardening",
    "auditd": "audit",
    "containers": "container",
    "integrity": "integrity",
    "yara": "ioc",
    "ebpf_exec_trace": "process",
}


@dataclass
class Assessment:
    finding_id: str
    scanner: str
    verdict: str
    rationale: list[str]
    tags: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    action: str | None = None
    allowlist_reason: str | None = None
    impact: float | None = None  # overrides the verdict's impact
    level: str | None = None  # overrides the verdict's host level
    listed: bool = True  # False: counted in reductions instead of listed one by one
    operational: bool = False
    headline: str = ""  # a short phrase for the host's risk reasons
    action_key: str | None = None  # what the action does to what; actions with one key are one action
    action_merge: tuple[str, str] | None = None  # (text with {details}, this finding's detail) to merge by key

    @property
    def expected(self) -> bool:
        return VERDICTS[self.verdict].expected

    @property
    def host_level(self) -> str:
        return self.level or VERDICTS[self.verdict].level


@dataclass
class Host:
    """What the rules need to know about the scanned machine: its identity from `meta`, and the context other
    findings give (loaded modules, services, the processes the IOC rules judged suspicious)."""

    hostname: str
    family: str
    distro: str
    user: str
    euid: str
    config: dict
    modules: frozenset = frozenset()  # loaded kernel module names
    services: frozenset = frozenset()  # unit names and process names the scan shows
    suspects: tuple = ()  # (exe, pid, verdict) of IOC findings judged contain or investigate (not the low ones)

    @classmethod
    def from_report(cls, report: dict) -> Host:
        meta = report.get("meta", {})
        host = cls(
            hostname=str(meta.get("hostname", "the host")),
            family=os_family(meta),
            distro=os_label(meta),
            user=str(meta.get("user", "")),
            euid=str(meta.get("euid", "")),
            config=meta.get("effective_config") or {},
        )
        by_scanner: dict[str, list[dict]] = {}
        for r in report.get("results", []):
            by_scanner.setdefault(r.get("scanner", ""), []).extend(r.get("findings", []))
        host.modules = frozenset(_module_names(by_scanner.get("modules", [])))
        host.services = frozenset(_service_names(by_scanner))
        suspects = []
        for f in by_scanner.get("ioc", []):
            a = assess_ioc(f, host)
            if a.verdict == "contain" or (a.verdict == "investigate" and a.host_level != "low"):
                exe, pid = ioc_exe_and_pid(f["id"])
                suspects.append((exe.replace(" (deleted)", ""), pid or md(f, "pid"), a.verdict))
        host.suspects = tuple(suspects)
        return host

    @property
    def compromised(self) -> bool:
        """A process the IOC rules contain: containment and evidence come before any hygiene."""
        return any(verdict == "contain" for _, _, verdict in self.suspects)

    def tool(self, what: str, **kw) -> str:
        return PACKAGE_TOOLS[self.family][what].format(**kw)

    def enabled(self, switch: str) -> bool:
        return str(self.config.get(switch, "false")).lower() == "true"


def _module_names(findings: list[dict]) -> list[str]:
    names = []
    for f in findings:
        if f["id"] == "module_summary":
            for key in ("out_of_tree_sample", "unsigned_sample", "sample", "notable"):
                names += [n for n in md(f, key).split(",") if n]
        else:
            names.append(f["id"])
    return names


def _service_names(by_scanner: dict[str, list[dict]]) -> list[str]:
    """Unit names (systemd scanner) and program names (process inventory, IOC commands, exec trace)."""
    names = [md(f, "unit") for f in by_scanner.get("systemd_units", []) if md(f, "unit")]
    for f in by_scanner.get("processes", []):
        words = str(f.get("description", "")).split()
        if words:
            names.append(words[0].rsplit("/", 1)[-1])
    for f in by_scanner.get("ioc", []):
        names.append(ioc_exe_and_pid(f["id"])[0].replace(" (deleted)", "").rsplit("/", 1)[-1])
    for f in by_scanner.get("ebpf_exec_trace", []):
        names.append(md(f, "comm"))
    for f in by_scanner.get("network", []):
        names.append(md(f, "exe").rsplit("/", 1)[-1])
    return [n for n in names if n]


def md(f: dict, key: str) -> str:
    return str((f.get("metadata") or {}).get(key, ""))


def flag(f: dict, key: str) -> bool:
    return md(f, key).lower() == "true"


def _a(f: dict, scanner: str, verdict: str, *rationale: str, **kw) -> Assessment:
    lines = [r for r in rationale if r]
    if not kw.get("headline") and lines:
        first = lines[0].split(": ", 1)[-1] if lines[0].startswith(f["id"]) else lines[0]
        kw["headline"] = _clip(first.rstrip("."), 100)
    return Assessment(f["id"], scanner, verdict, lines, **kw)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


# -- privileged binaries --------------------------------------------------------------------------


def assess_suid(f: dict, host: Host) -> Assessment:
    path = f["id"]
    stock = stock_privileged(path, host.family)
    if stock:
        mode = bit_phrase(stock.bit, stock.owner)
        return _a(
            f,
            "suid_sgid",
            "expected",
            f"{mode} from {stock.package}: {stock.purpose}; without it {stock.breaks} stop working. "
            "Expected, no action.",
            tags=["stock", stock.bit.replace("+", "_")],
            allowlist_reason=f"stock {stock.package}, {mode}",
            listed=not flag(f, "expected"),
            headline=f"stock {mode} binary from {stock.package}",
        )
    vendor = third_party(path)
    if vendor:
        mode = bit_phrase(vendor.bit, vendor.owner)
        return _a(
            f,
            "suid_sgid",
            "verify_provenance",
            f"Not a {host.distro} package: {vendor.vendor} ships it {mode} in {vendor.package} so that it "
            f"{vendor.purpose}.",
            "A privileged binary from outside the distribution runs with its owner's rights for every user "
            "who starts it, so the copy must be the vendor's.",
            f"Cleared by: {host.tool('owner', path=path)} naming {vendor.package}, "
            f"{host.tool('verify', package=vendor.package)} reporting nothing, and a SHA-256 equal to the "
            f"release from {vendor.source}.",
            tags=["third_party", vendor.bit.replace("+", "_")],
            techniques=["T1548.001"],
            headline=f"third-party {mode} binary from {vendor.vendor}, provenance not yet verified",
            action=f"Verify provenance of {path} ({vendor.vendor}): `{host.tool('owner', path=path)}` should "
            f"name {vendor.package}, `{host.tool('verify', package=vendor.package)}` should report "
            f"nothing, and its SHA-256 should match the {vendor.source} release; confirm someone on "
            f"the host needs {vendor.vendor}'s software.",
        )
    other = stock_elsewhere(path, host.family)
    if other:
        mode = bit_phrase(other.bit, other.owner)
        return _a(
            f,
            "suid_sgid",
            "verify_provenance",
            f"{path} ships {mode} in {other.package} on {DISTRO_NAMES[other.family]}, not on {host.distro}: "
            "a package from another distribution family, or a manual copy.",
            f"Cleared by: {host.tool('owner', path=path)} naming a package that verifies; confirmed by: no owner.",
            tags=["unexpected", "foreign_package"],
            techniques=["T1548.001"],
            headline=f"{path} is set-id as on another distribution family, not as {host.distro} ships it",
            action=f"Verify provenance of {path}: `{host.tool('owner', path=path)}`, `stat {path}` and its "
            "SHA-256 against the package it claims to come from.",
        )
    escape = shell_escape(path)
    if escape:
        return _a(
            f,
            "suid_sgid",
            "contain",
            f"{path} is set-id and is a program that hands out a shell or any file when it runs with raised "
            f"rights (GTFOBins lists {escape}): with a root SUID bit every local user is root in one command.",
            f"No distribution ships it set-id. `{host.tool('verify', package='<package>')}` would pass it: package "
            "verification compares content, and the content is the package's; the added mode bit is the backdoor.",
            tags=["unexpected", "shell_escape_setid"],
            techniques=["T1548.001"],
            headline=f"set-id {path}, a shell for anyone (GTFOBins)",
            action=f"Contain {path} as a root backdoor: preserve the evidence first (`stat {path}` for owner, mode "
            f"and change time, `sha256sum {path}`, `cp -a {path} /root/evidence/`), then remove the bit "
            f"(`chmod u-s,g-s {path}`) and find who set it (auth logs, shell histories, `ausearch -f {path}`, "
            "files changed at the same time).",
            action_key=f"contain-setid:{path}",
        )
    if path.startswith(ioc_facts.SCRATCH_ROOTS + ("/home/",)):
        return _a(
            f,
            "suid_sgid",
            "contain",
            f"A set-id binary in user-writable space ({path}) is a classic root backdoor: no package installs "
            "one there.",
            tags=["unexpected", "user_writable_path"],
            techniques=["T1548.001"],
            headline=f"set-id binary {path} in user-writable space",
            action=f"Treat {path} as a backdoor: isolate the host, preserve the file (hash, stat, copy) and "
            f"the logs, then remove it and find how it got its bit.",
        )
    local = path.startswith("/usr/local/")
    where = (
        "a local build that no package manager tracks"
        if local
        else f"no {host.distro} package this analysis knows installs it with a set-id bit"
    )
    return _a(
        f,
        "suid_sgid",
        "verify_provenance",
        f"{path} carries a SUID/SGID bit and {where}.",
        "An unexplained set-id binary in a system directory is how backdoors and forgotten test builds "
        "look alike; the scan cannot tell which.",
        f"Cleared by: an owning package ({host.tool('owner', path=path)}) that verifies, or a documented "
        "local install with a known hash; confirmed by: no owner, an unknown hash or a recent change time.",
        tags=["unexpected"] + (["local_build"] if local else []),
        techniques=["T1548.001"],
        headline=f"set-id binary {path} that no package explains",
        impact=7.5,
        level="high",
        action=f"Verify provenance of {path}: `{host.tool('owner', path=path)}`, `stat {path}` (owner, mode, "
        f"change time), `sha256sum {path}` against the package or build it claims to be; ask who "
        "installed it and why it needs the bit.",
    )


def assess_world_writable(f: dict, host: Host) -> Assessment:
    path, rule = f["id"], md(f, "rule")
    return WORLD_WRITABLE_RULES.get(rule, _plain_world_writable)(f, host, path)


def _file_capability(f: dict, host: Host, path: str) -> Assessment:
    cap = stock_capability(path, host.family)
    if cap:
        return _a(
            f,
            "world_writable",
            "expected",
            f"{cap.package} sets {cap.capabilities} so that it {cap.purpose} without SUID; listed only for its "
            "file capabilities, not for write permission. Expected, no action.",
            tags=["stock", "file_capability"],
            allowlist_reason=f"stock {cap.package}, {cap.capabilities}",
            headline=f"stock {cap.capabilities} binary from {cap.package}",
        )
    return _a(
        f,
        "world_writable",
        "verify_provenance",
        f"{path} has file capabilities that no {host.distro} package this analysis knows gives it; "
        f"{FLAG_MEANINGS[('world_writable', 'file_capability')]}.",
        "cap_setuid, cap_sys_admin, cap_dac_override or cap_sys_ptrace on a binary are as good as root.",
        tags=["file_capability", "unexpected"],
        techniques=["T1548.001"],
        action=f"Check `getcap {path}` and its owner (`{host.tool('owner', path=path)}`); if no package "
        "sets these capabilities, find who did and whether anything needs them.",
    )


def _setuid_interpreter(f: dict, host: Host, path: str) -> Assessment:
    return _a(
        f,
        "world_writable",
        "contain",
        f"{path} is a set-uid shell or script interpreter: anyone who runs it gets its owner's rights "
        "with a prompt. No distribution ships one.",
        tags=["setuid_interpreter"],
        techniques=["T1548.001"],
        action=f"Treat {path} as a backdoor: preserve it (sha256sum, stat, copy) and the logs that show who set it "
        "(copy the logs, auth and package, off the host before anything restarts), then clear its set-id bits "
        f"(chmod u-s,g-s {path}) and trace who set them from those logs.",
        action_key=f"contain-setid:{path}",
    )


def _path_dir(f: dict, host: Host, path: str) -> Assessment:
    return _a(
        f,
        "world_writable",
        "harden",
        f"{path} is on the PATH and writable by everyone: any user can plant a command that root or "
        "another user then runs.",
        tags=["path_hijack"],
        impact=8.0,
        level="high",
        action=f"Remove other users' write access to {path} (chmod o-w {path}) and check it for planted programs.",
    )


def _dangling_hardlink(f: dict, host: Host, path: str) -> Assessment:
    return _a(
        f,
        "world_writable",
        "investigate",
        f"A SUID binary is hard-linked into temporary space ({md(f, 'paths')}): the link keeps the old, "
        "possibly vulnerable copy alive after the package is updated.",
        tags=["suid_hardlink"],
        techniques=["T1548.001"],
        level="high",
        action=f"Compare the linked copies ({md(f, 'paths')}) by inode and hash, preserve them, and find who "
        "created the link in temporary space.",
    )


WW_PLACES = [  # path prefix, impact, level, what a world-writable file there allows
    (
        ("/var/run/docker.sock", "/run/docker.sock"),
        9.0,
        "high",
        "it drives the Docker daemon, so any user can start a privileged container and become root",
    ),
    (("/etc/",), 8.0, "high", "programs running as root read it"),
    (("/usr/bin/", "/bin/", "/usr/local/bin/"), 9.0, "high", "other users and root run it"),
    (("/var/",), 5.0, "low", "any local account can change its content"),
]


def _writable_autostart(f: dict, host: Host, path: str, auto) -> Assessment:
    return _a(
        f,
        "world_writable",
        "investigate",  # what it holds decides the rest: read it before anyone changes its mode
        f"{path} is writable by every user and {auto.reads}: whoever can write it runs code as root, and it may "
        "already hold what someone planted.",
        f"Cleared by: content that matches the package's or the administrator's (`stat {path}` for the change "
        "time); confirmed by: a line or library nobody added.",
        tags=["world_writable", "autostart"],
        techniques=[auto.technique],
        impact=8.0,
        level="high",
        headline=f"world-writable {path}, which root runs or loads",
        action=f"{path}: {_upper_first(auto.inspect.format(owner=host.tool('owner', path='<library>')))}.",
        action_key=f"autostart:{path}",
    )


def _plain_world_writable(f: dict, host: Host, path: str) -> Assessment:
    auto = autostart_file(path)
    if auto:
        return _writable_autostart(f, host, path, auto)
    impact, level, why = 5.0, "low", "any local account can change its content"
    for prefixes, imp, lvl, text in WW_PLACES:
        if path.startswith(prefixes):
            impact, level, why = imp, lvl, text
            break
    return _a(
        f,
        "world_writable",
        "harden",
        f"{path} is writable by every user and {why}; stock packages ship no world-writable file there.",
        f"Cleared by: a known owner and purpose (`stat {path}`, `{host.tool('owner', path=path)}`); a leftover "
        "test file can go once its owner agrees.",
        tags=["world_writable"],
        impact=impact,
        level=level,
        headline=f"world-writable file {path}",
        action=f"Find the owner and purpose of {path} (`stat {path}`, `{host.tool('owner', path=path)}`) and "
        f"remove other users' write access (chmod o-w {path}).",
    )


WORLD_WRITABLE_RULES = {
    "file_capability": _file_capability,
    "setuid_interpreter": _setuid_interpreter,
    "path_dir_world_writable": _path_dir,
    "dangling_suid_hardlink": _dangling_hardlink,
}


# -- process indicators ---------------------------------------------------------------------------


def ioc_exe_and_pid(finding_id: str) -> tuple[str, str]:
    exe, _, pid = finding_id.rpartition(":")
    return (exe, pid) if pid.isdigit() else (finding_id, "")


def ioc_signals(f: dict, family: str = "") -> dict:
    """What an IOC finding's evidence amounts to, from its id, flags and command line (5.0.0 writes argv[0]
    only, up to 127 characters, as `command`)."""
    exe, pid = ioc_exe_and_pid(f["id"])
    command = md(f, "command")
    names = ioc_facts.suspicious_names(command + " " + exe)
    return {
        "exe": exe.replace(" (deleted)", ""),
        "pid": pid,
        "command": command,
        "subject": ioc_facts.script_path(command) or exe.replace(" (deleted)", ""),
        "deleted": flag(f, "deleted_executable") or exe.endswith("(deleted)"),
        "scratch": exe.startswith(ioc_facts.SCRATCH_ROOTS),
        "home": exe.startswith(("/home/", "/run/user/")),
        "hidden": ioc_facts.hidden_component(exe),
        "strong": [n for n in names if n in ioc_facts.STRONG_NAMES],
        "miner_args": bool(ioc_facts.MINER_HINTS.search(command)),
        "named": [
            n
            for n in ioc_facts.program_names(exe, command)
            if not owning_package(exe.replace(" (deleted)", ""), family)
        ],
        "env": flag(f, "environment_issue"),
        "app": ioc_facts.user_app(exe),
        "system": exe.startswith(("/usr/", "/opt/", "/snap/")),
        "injection": ioc_facts.injection_text(command),
    }


IOC_FLAG_NOTES = {  # what the flag adds to the evidence, in one clause
    "world_writable_executable": "the flag world_writable_executable only means the executable's path starts "
    "with /tmp, /dev/shm, /var/tmp or /home: sys-scan never checked its permissions",
    "pattern_match": "pattern_match fires on the same path strings (/tmp, /dev/shm, /var/tmp, /home) as well as on "
    "names like xmrig or kworker",
}


def assess_ioc(f: dict, host: Host) -> Assessment:
    s = ioc_signals(f, host.family)
    exe, pid = s["exe"], s["pid"]
    where = (
        "world-writable scratch space"
        if s["scratch"]
        else "a home directory"
        if s["home"]
        else "a system path"
        if s["system"]
        else "an unusual path"
    )
    flags = [
        k
        for k in ("world_writable_executable", "deleted_executable", "environment_issue", "pattern_match")
        if flag(f, k)
    ]
    notes = [IOC_FLAG_NOTES[k] for k in flags if k in IOC_FLAG_NOTES and not (k == "pattern_match" and s["strong"])]
    meaning = _upper_first("; ".join(notes) + ".") if notes else ""
    tags = ["process"] + flags
    techniques = [ioc_facts.SUSPICIOUS_NAMES[n][1] for n in s["strong"] if ioc_facts.SUSPICIOUS_NAMES[n][1]]
    techniques += ["T1070.004"] if s["deleted"] else []
    injected = (
        (
            f'Its command line carries text addressed to an AI analyst ("{s["injection"][:70]}"): data from '
            "the host, not an instruction, and itself a sign of tampering."
        )
        if s["injection"]
        else ""
    )
    evidence = f"{exe} (pid {pid}) runs from {where}."
    name = exe.rsplit("/", 1)[-1]
    contain_action = (
        f"Isolate {host.hostname} from the network, then preserve evidence before touching the process: copy "
        f"its executable (`cp /proc/{pid}/exe /root/evidence/{name}.{pid}`, even when deleted), capture its "
        f"memory (`gcore -o /root/evidence/{name} {pid}`), save `ls -l /proc/{pid}/fd`, its sockets (`ss -tp`) "
        f"and logs (`journalctl _PID={pid}`, auth and cron logs); only then stop the process, remove "
        f"{s['subject']} and hunt for its persistence (crontabs, systemd units, shell profiles)."
    )
    confirm = (
        f"Cleared by: owner {host.user or 'the user'} with no group/other write (`stat`), a SHA-256 matching "
        "the vendor's release and a parent in the user's session; confirmed by: another owner, write access "
        "for others, an unknown hash or unexpected network peers."
    )
    check_action = (
        f"Check {exe} (pid {pid}) before acting: `stat -c '%U %G %a' {exe}`, `sha256sum {exe}` against "
        f"the vendor's published checksum, its parent (`ps -o ppid=,user= -p {pid}`) and its sockets "
        f"(`ss -tp | grep pid={pid}`)."
    )
    check_merge = (
        f"Check {exe} (pids {{details}}) before acting: `stat -c '%U %G %a' {exe}`, `sha256sum {exe}` against the "
        "vendor's published checksum, each pid's parent (`ps -o ppid=,user= -p <pid>`) and sockets (`ss -tp`)."
    )
    contain_key, check_key = f"contain-process:{s['subject']}", f"check-process:{exe}"
    if s["strong"] and (s["miner_args"] or s["scratch"] or s["hidden"] or s["deleted"]):
        what = ioc_facts.SUSPICIOUS_NAMES[s["strong"][0]][0]
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            f"Its name or command line marks {what} and it runs from {where}"
            + (" with miner pool arguments" if s["miner_args"] else "")
            + ".",
            injected,
            tags=tags + ["suspicious_name"],
            techniques=techniques,
            action=contain_action,
            action_key=contain_key,
            headline=f"{what} running as {name} from {where}",
        )
    if s["named"]:
        what = ioc_facts.SUSPICIOUS_NAMES[s["named"][0]][0]
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            f"The program itself is named as {what} ({name}), and no package this analysis knows installs it "
            "there: user-space software named like this is a miner or hides behind a kernel thread's name.",
            "Cleared by: a documented, wanted installation (its owner says so and the hash is the "
            "project's release); confirmed by: an unknown parent, persistence or a hash no release has.",
            injected,
            tags=tags + ["suspicious_name"],
            techniques=techniques,
            action=contain_action,
            action_key=contain_key,
            headline=f"{what} running as {name}",
        )
    if name in ioc_facts.SYSTEM_PROGRAM_NAMES and (s["scratch"] or s["hidden"]):
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            f"{name} is a system program that its package installs under /usr; a copy running from {where}"
            + (f" in a hidden directory ({s['hidden']})" if s["hidden"] else "")
            + " is masquerading as it.",
            injected,
            tags=tags + ["masquerading"],
            techniques=techniques + ["T1036.005"],
            action=contain_action,
            action_key=contain_key,
            headline=f"{name} masquerades as a system program from {where}",
        )
    if s["injection"]:
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            injected,
            "Legitimate software never writes instructions for an AI analyst into its process title: "
            "whoever started it expected automated triage and tried to silence it.",
            tags=tags + ["prompt_injection"],
            techniques=techniques + ["T1036"],
            action=contain_action,
            action_key=contain_key,
            headline=f"{name} carries text addressed to an AI analyst in its command line",
        )
    if s["deleted"] and (s["scratch"] or s["home"] or s["hidden"]):
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            f"{_upper_first(FLAG_MEANINGS[('ioc', 'deleted_executable')])}; a program in {where} that deleted "
            f"itself while running is hiding, not upgrading. /proc/{pid}/exe still holds the original.",
            injected,
            tags=tags,
            techniques=techniques,
            action=contain_action,
            action_key=contain_key,
            headline=f"{name} runs from {where} with its executable deleted",
        )
    if s["deleted"]:
        return _a(
            f,
            "ioc",
            "review",
            evidence,
            f"{_upper_first(FLAG_MEANINGS[('ioc', 'deleted_executable')])}; under a system path this is "
            "usually a package upgrade that replaced the file while the process kept running.",
            f"Cleared by: the package's new file verifying and a clean restart; confirmed by: a hash of "
            f"/proc/{pid}/exe that matches no package version.",
            injected,
            tags=tags,
            techniques=techniques,
            action=f"Before any restart, keep the only copy of what pid {pid} runs: `cp /proc/{pid}/exe "
            f"/root/evidence/{name}.{pid}`, and compare its `sha256sum` with the file of the package that owns "
            f"{exe} (`{host.tool('owner', path=exe)}`)"
            + (
                f"; on this host, where a process is contained, also capture its memory (`gcore {pid}`) and "
                f"logs (`journalctl _PID={pid}`) and restart nothing until the hash matches a package version"
                if host.compromised
                else ""
            )
            + ". Then restart the service behind it (needrestart names it).",
            action_key=f"preserve-deleted:{pid}",
            headline=f"{name} still runs a deleted system binary, most likely after an upgrade",
        )
    if s["scratch"] and s["hidden"]:
        return _a(
            f,
            "ioc",
            "contain",
            evidence,
            f"It runs from a hidden directory ({s['hidden']}) in world-writable scratch space, where no "
            "installed software lives.",
            injected,
            tags=tags + ["hidden_path"],
            techniques=techniques + ["T1036.005"],
            action=contain_action,
            action_key=contain_key,
            headline=f"{name} runs from hidden directory {s['hidden']} in scratch space",
        )
    if s["app"] and not s["hidden"] and not s["injection"] and not s["strong"]:
        app = s["app"]
        return _a(
            f,
            "ioc",
            "investigate",
            evidence + f" The path is {app.name}'s per-user install ({app.note}); nothing in the scan shows tampering.",
            meaning,
            confirm,
            tags=tags + ["user_installed"],
            techniques=techniques,
            level="low",
            impact=4.0,
            action=check_action,
            action_key=check_key,
            action_merge=(check_merge, pid),
            headline=f"IOC heuristic hit on {app.name}'s per-user install; the path, not tampering, set it off",
        )
    sandboxed = ioc_facts.sandboxed_app(exe)
    if sandboxed and not (s["hidden"] or s["injection"] or s["strong"] or s["deleted"]):
        return _a(
            f,
            "ioc",
            "review",
            evidence + f" The path is the {sandboxed.kind} {sandboxed.name}, a read-only image its store signs.",
            (
                f"The environment flag fires because the {sandboxed.kind} launcher sets loader variables "
                "(LD_LIBRARY_PATH to the package's own libraries) for every program it starts."
                if s["env"]
                else meaning
            ),
            f"Cleared by: `{sandboxed.verify}` showing the store's publisher; confirmed by: a package side-loaded "
            "with --dangerous (snap) or from an unknown remote (Flatpak).",
            injected,
            tags=tags + ["sandboxed_app"],
            techniques=techniques,
            level="low",
            impact=3.0,
            action=f"Confirm {sandboxed.kind} {sandboxed.name} came from the store: `{sandboxed.verify}`.",
            action_key=f"verify-sandboxed:{sandboxed.name}",
            headline=f"{sandboxed.kind} {sandboxed.name}'s launcher sets a loader variable; nothing shows tampering",
        )
    if s["env"] and not (s["scratch"] or s["home"]):
        return _a(
            f,
            "ioc",
            "investigate",
            evidence,
            _upper_first(FLAG_MEANINGS[("ioc", "environment_issue")]) + "; LD_LIBRARY_PATH is common (IDEs, "
            "Steam, CUDA), LD_PRELOAD of a library from outside the system paths is not.",
            injected,
            "Cleared by: the variable naming a packaged library; confirmed by: a preloaded library no package owns.",
            tags=tags,
            techniques=techniques,
            action=f"Read the loader variables of pid {pid} (`tr '\\0' '\\n' < /proc/{pid}/environ | grep "
            f"^LD_`) and check the preloaded library's owner (`{host.tool('owner', path='<library>')}`).",
            action_key=f"loader-env:{exe}",
            headline=f"{name} runs with a loader variable (LD_PRELOAD or LD_LIBRARY_PATH) set",
        )
    level = "high" if (s["scratch"] or s["hidden"] or s["injection"]) else None
    hidden = f"It sits in a hidden directory ({s['hidden']})." if s["hidden"] else ""
    return _a(
        f,
        "ioc",
        "investigate",
        evidence,
        meaning,
        hidden,
        injected,
        confirm,
        tags=tags + (["hidden_path"] if s["hidden"] else []),
        techniques=techniques,
        level=level,
        impact=7.5 if level else None,
        action=check_action,
        action_key=check_key,
        action_merge=(check_merge, pid),
        headline=f"unknown program {name} runs from {where}" + (" and carries injected text" if s["injection"] else ""),
    )


# -- kernel ---------------------------------------------------------------------------------------


def _sysctl(f: dict, host: Host, scanner: str, name: str, value: str) -> Assessment:
    row = SYSCTLS.get(name)
    mismatch = f["severity"] != "info" or md(f, "status") == "mismatch"
    if row is None:
        return _a(
            f,
            scanner,
            "harden" if mismatch else "informational",
            f"{name} = {value}: {f.get('description', '')}.",
            tags=["sysctl"],
            listed=mismatch,
            action=f"Review {name} (now {value}) and set the intended value in /etc/sysctl.d/." if mismatch else None,
        )
    if not mismatch:
        return _a(f, scanner, "informational", f"{name} = {value}: {row.meaning}.", tags=["sysctl"], listed=False)
    if is_stock_value(name, value, host.family):
        return _a(
            f,
            scanner,
            "expected",
            f"{name} = {value} is {host.distro}'s own default: {row.meaning}.",
            (
                f"Changing it is not free: {row.caveat}. Expected, no action."
                if row.caveat
                else "Expected, no action; tightening it is optional hardening."
            ),
            tags=["sysctl", "stock_default"],
            allowlist_reason=f"{host.distro} default for {name}",
        )
    desired = md(f, "desired") or md(f, "expected")
    if desired and stricter_than(name, value, desired):
        return _a(
            f,
            scanner,
            "expected",
            f"{name} = {value} is stricter than the scanner's desired {desired}: {row.meaning}.",
            "Lowering it to the desired value would weaken the host. Expected, no action.",
            tags=["sysctl", "stricter_than_desired"],
            allowlist_reason=f"{name} = {value} is stricter than {desired}",
            headline=f"{name} = {value}, stricter than the scanner asks",
        )
    if name == "net.ipv4.ip_forward":
        return _ip_forward(f, host, scanner, name, value, row)
    return _a(
        f,
        scanner,
        "harden",
        f"{name} = {value} differs from the stock value: {row.meaning}.",
        f"Caveat: {row.caveat}." if row.caveat else "",
        tags=["sysctl"],
        techniques=["T1562.001"] if name == "kernel.randomize_va_space" else [],
        impact=6.0 if name == "kernel.randomize_va_space" else None,
        level="medium" if name == "kernel.randomize_va_space" else None,
        action=f"{row.fix[0].upper()}{row.fix[1:]}.",
    )


def _ip_forward(f: dict, host: Host, scanner: str, name: str, value: str, row) -> Assessment:
    """Forwarding is judged from what the host runs: a container runtime, hypervisor, VPN or sharing connection
    (its modules or services in the scan) needs it, and turning it off cuts every guest, pod or client off."""
    users = forwarding_users(host.modules, host.services)
    if users:
        return _a(
            f,
            scanner,
            "expected",
            f"IP forwarding is on ({name} = {value}) and the scan shows what uses it: {', '.join(users[:8])}.",
            f"{_upper_first(row.caveat)}: setting it to 0 would cut their network. Expected, no action.",
            tags=["sysctl", "forwarding", "forwarding_in_use"],
            allowlist_reason=f"forwarding used by {', '.join(users[:3])}",
            headline=f"IP forwarding on, used by {users[0]}",
        )
    return _a(
        f,
        scanner,
        "review",
        f"IP forwarding is on ({name} = {value}); {row.caveat}.",
        "The scan shows none of them: "
        + ("container detection was off, " if not host.enabled("containers") else "")
        + "no bridge, NAT, overlay or VPN module and no container, VM or VPN service among what it lists.",
        tags=["sysctl", "forwarding"],
        action=f"Find what enabled forwarding and what uses it: {FORWARDING_CHECK}. Leave it on if any container "
        "runtime, VM, VPN, shared connection or route uses it; only on a host where none does, set "
        "net.ipv4.ip_forward = 0 in /etc/sysctl.d/.",
        action_key="review-ip-forward",
    )


def assess_kernel_param(f: dict, host: Host) -> Assessment:
    return _sysctl(f, host, "kernel_params", sysctl_name(f["id"]), md(f, "current") or md(f, "value"))


KERNEL_HARDENING_IDS = {  # id -> verdict, rationale, action
    "kernel:lockdown:disabled": (
        "expected",
        "Kernel lockdown is off, as on any install that boots without Secure Boot; enabling it "
        "(lockdown=integrity) blocks unsigned modules such as DKMS GPU or VirtualBox drivers and hibernation. "
        "Expected, no action.",
        None,
    ),
    "kernel:secureboot:dbx-missing": (
        "review",
        "The scanner found no EFI dbx revocation variable (a heuristic); `mokutil --sb-state` and "
        "`fwupdmgr get-updates` show whether firmware revocations are current.",
        None,
    ),
    "kernel:tpm:absent": (
        "informational",
        "No TPM device: a hardware fact that limits measured boot, not a vulnerability.",
        None,
    ),
}


def assess_kernel_hardening(f: dict, host: Host) -> Assessment:
    if f["id"].startswith("kernel:sysctl:"):
        return _sysctl(f, host, "kernel_hardening", sysctl_name(md(f, "path")), md(f, "value"))
    if f["id"] in KERNEL_HARDENING_IDS:
        verdict, text, action = KERNEL_HARDENING_IDS[f["id"]]
        return _a(
            f,
            "kernel_hardening",
            verdict,
            text,
            tags=["kernel_hardening"],
            action=action,
            allowlist_reason="stock boot configuration" if verdict == "expected" else None,
            listed=verdict != "informational",
        )
    return _informational(f, host, "kernel_hardening")


def _names(f: dict, key: str) -> list[str]:
    return [n for n in md(f, key).split(",") if n]


def assess_module_summary(f: dict, host: Host) -> Assessment:
    """5.0.0's --modules-summary finding: counts, samples and the kernel's taint value (decoded here with the
    kernel's own bit names, see knowledge.modules)."""
    hidden = _names(f, "hidden_proc_only_sample")
    if hidden or md(f, "hidden_proc_only_count") not in ("", "0"):
        return _a(
            f,
            "modules",
            "contain",
            f"{md(f, 'hidden_proc_only_count')} module(s) ({', '.join(hidden) or 'unnamed'}) are listed in "
            "/proc/modules but missing from /sys/module: a module that removed its own sysfs entry is hiding, "
            "what LKM rootkits do.",
            "A malicious module controls the kernel: tools on the host can no longer be trusted.",
            tags=["kernel_module", "rootkit_indicator"],
            techniques=["T1014", "T1547.006"],
            action=f"Isolate {host.hostname}; capture memory (LiME or the hypervisor) before anything else, then "
            "rebuild the host from known-good media.",
        )
    bits = taint_bits(md(f, "taint_value"))
    explained = [n for n in _names(f, "out_of_tree_sample") + _names(f, "unsigned_sample") if vendor_module(n)]
    unknown = [
        n
        for n in _names(f, "out_of_tree_sample") + _names(f, "unsigned_sample")
        if not vendor_module(n) and n not in OVERSIZED_INTREE_MODULES
    ]
    taints = [
        f"{KERNEL_TAINT_BITS[b][1]} ({KERNEL_TAINT_BITS[b][0]}: {KERNEL_TAINT_BITS[b][2]})"
        for b in bits
        if b in KERNEL_TAINT_BITS
    ]
    taint_text = (
        (
            f"taint {md(f, 'taint_value')} = {', '.join(taints)}"
            + (f" (sys-scan labels it {md(f, 'taint_flags')})" if md(f, "taint_flags") else "")
        )
        if taints
        else "kernel not tainted"
    )
    if unknown or {1, 3} & set(bits):
        why = (
            f"out-of-tree or unsigned module(s) no vendor explains: {', '.join(unknown)}"
            if unknown
            else "a module was forced in or out past the kernel's checks"
        )
        return _a(
            f,
            "modules",
            "investigate",
            f"Module summary: {why}; {taint_text}.",
            "Cleared by: `modinfo` naming a package or DKMS source for each; confirmed by: a module with no "
            "file on disk or an unknown author.",
            tags=["kernel_module", "kernel_taint"],
            techniques=["T1547.006"],
            level="high",
            action=f"List what tainted the kernel on {host.hostname}: `dmesg | grep -i taint`, `modinfo` of "
            "each out-of-tree or unsigned module, and `journalctl -k | grep -i 'loading out-of-tree'`.",
        )
    if {0, 12, 13} & set(bits) and not explained:
        return _a(
            f,
            "modules",
            "review",
            f"Module summary: {taint_text}, yet no loaded module the scan sampled is out of tree or unsigned.",
            "The taint outlives the module: usually a DKMS or vendor driver loaded and unloaded since boot, "
            "rarely a module that hides itself (a hidden one would also show in hidden_proc_only_count).",
            tags=["kernel_module", "kernel_taint"],
            action=f"Find which module tainted the kernel on {host.hostname} (`journalctl -k -b | grep -i "
            "taint`) and that it has an owner (`modinfo <module>`).",
        )
    notes = []
    if explained:
        notes.append(f"out-of-tree or unsigned by design: {', '.join(sorted(set(explained)))}")
    oversized = [n for n in _names(f, "unsigned_sample") if n in OVERSIZED_INTREE_MODULES]
    if oversized:
        notes.append(
            f"{', '.join(oversized)} read as unsigned only because sys-scan reads the first 2 MiB of a "
            "compressed module and their signature sits further in"
        )
    if md(f, "sysfs_only_count") not in ("", "0"):
        notes.append(
            f"{md(f, 'sysfs_only_count')} 'sysfs only' entries are built-in parts of the kernel "
            "(e.g. keyboard, vt), not hidden modules"
        )
    module_taint = [t for b, t in zip([b for b in bits if b in KERNEL_TAINT_BITS], taints) if b in MODULE_TAINTS]
    summary = f"{md(f, 'total') or '?'} modules loaded; {taint_text}."
    return _a(
        f,
        "modules",
        "expected" if notes or module_taint else "informational",
        summary + (" " + "; ".join(notes) + "." if notes else ""),
        tags=["kernel_module"],
        listed=f.get("severity", "info") != "info",
        allowlist_reason="; ".join(notes) if notes else None,
    )


def assess_module(f: dict, host: Host) -> Assessment:
    name = f["id"]
    if name == "module_summary":
        return assess_module_summary(f, host)
    anomalies = [
        k
        for k in ("hidden_sysfs", "missing_file", "wx_section", "suspicious_section_name", "large_text_section")
        if md(f, k)
    ]
    if rootkit_module(name) or anomalies:
        why = (
            f"{name} is a known rootkit name"
            if rootkit_module(name)
            else f"the module shows {', '.join(anomalies)}, what rootkits leave behind"
        )
        return _a(
            f,
            "modules",
            "contain",
            f"Kernel module {name}: {why}.",
            "A malicious module controls the kernel: tools on the host can no longer be trusted.",
            tags=["kernel_module", "rootkit_indicator"],
            techniques=["T1547.006", "T1014"],
            action=f"Isolate {host.hostname}; capture memory (LiME or the hypervisor) before anything else, "
            f"then rebuild the host from known-good media: {name} cannot be cleaned from inside.",
        )
    if flag(f, "unsigned") or flag(f, "out_of_tree"):
        vendor = vendor_module(name)
        if vendor:
            return _a(
                f,
                "modules",
                "expected",
                f"{name} is {vendor}: out-of-tree and unsigned by design.",
                "Expected, no action (sign it with a MOK key if Secure Boot is wanted).",
                tags=["kernel_module", "vendor_module"],
                allowlist_reason=f"{vendor}",
            )
        path = md(f, "path")
        if not flag(f, "out_of_tree") and name in OVERSIZED_INTREE_MODULES and path.endswith((".xz", ".gz", ".zst")):
            return _a(
                f,
                "modules",
                "informational",
                f"{name} is an in-tree module read as unsigned only because sys-scan reads the first 2 MiB of a "
                "compressed module and its signature sits further in.",
                f"Confirmed signed by `modinfo -F signer {name}` naming the distribution's key; the file belongs to "
                f"the kernel package (`{host.tool('owner', path=path)}`).",
                tags=["kernel_module", "scanner_limit"],
                listed=False,
            )
        return _a(
            f,
            "modules",
            "investigate",
            f"{name} is {'unsigned' if flag(f, 'unsigned') else 'out of tree'} and matches no vendor driver "
            "this analysis knows.",
            f"Cleared by: `modinfo {name}` naming a package or DKMS source; confirmed by: no file on disk or "
            "an unknown author.",
            tags=["kernel_module", "unsigned" if flag(f, "unsigned") else "out_of_tree"],
            techniques=["T1547.006"],
            level="high",
            action=f"Identify {name}: `modinfo {name}`, `{host.tool('owner', path='<module path>')}`, and "
            "when it was loaded (`journalctl -k | grep -i " + name + "`).",
        )
    return _a(f, "modules", "informational", f"Loaded module {name}.", tags=["kernel_module"], listed=False)


# -- policy ---------------------------------------------------------------------------------------


def assess_mac(f: dict, host: Host) -> Assessment:
    fid, debian = f["id"], host.family == "debian"
    if fid == "apparmor":
        if not flag(f, "enabled"):
            if debian:
                return _a(
                    f,
                    "mac",
                    "harden",
                    f"AppArmor is off on {host.distro}, where it is on by default: "
                    "something disabled it (apparmor=0 on the kernel command line, or the service masked).",
                    tags=["mac"],
                    techniques=["T1562.001"],
                    impact=7.0,
                    level="medium",
                    action="Find why AppArmor is off (`cat /proc/cmdline`, `systemctl status apparmor`) and "
                    "re-enable it; profiles in complain mode first if services break.",
                )
            return _a(
                f,
                "mac",
                "expected",
                f"{host.distro} uses SELinux, not AppArmor. Expected, no action.",
                tags=["mac"],
                allowlist_reason="RHEL-family hosts confine with SELinux",
            )
        unconfined = int(md(f, "unconfined_critical") or 0)
        complain = int(md(f, "complain_count") or 0)
        if unconfined or complain:
            lines = [f"AppArmor is enforcing ({md(f, 'profiles_seen') or '?'} processes seen)."]
            if unconfined:
                lines.append(
                    f"{_upper_first(FLAG_MEANINGS[('mac', 'unconfined_critical')])}: {host.distro} ships no "
                    "enforcing profile for sshd or dbus-daemon, so one system bus and one session bus "
                    "already count 2."
                )
            if complain:
                lines.append(f"{complain} profile(s) in complain mode log but do not block.")
            verdict = "expected" if debian and not complain and unconfined <= 2 else "review"
            return _a(
                f,
                "mac",
                verdict,
                *lines,
                "Expected, no action." if verdict == "expected" else "",
                tags=["mac", "apparmor"],
                allowlist_reason="stock AppArmor policy" if verdict == "expected" else None,
                action=None
                if verdict == "expected"
                else "List unconfined and complain-mode processes (`aa-status`) and confine the network-facing "
                "ones (nginx, containerd, dockerd) with enforcing profiles.",
            )
        return _a(f, "mac", "informational", "AppArmor is enforcing.", tags=["mac"], listed=False)
    if fid == "selinux":
        if md(f, "present") == "false":
            if debian:
                return _a(
                    f,
                    "mac",
                    "expected",
                    f"{host.distro} confines with AppArmor; SELinux is not part of it. Expected, no action.",
                    tags=["mac"],
                    allowlist_reason="Debian-family hosts confine with AppArmor",
                )
            return _a(
                f,
                "mac",
                "harden",
                f"SELinux is absent on {host.distro}, which enables it by default.",
                tags=["mac"],
                techniques=["T1562.001"],
                impact=7.0,
                level="medium",
                action="Re-enable SELinux (SELINUX=enforcing in /etc/selinux/config, relabel with "
                "`fixfiles -F onboot`, reboot).",
            )
        if flag(f, "permissive") or md(f, "mode") == "permissive":
            return _a(
                f,
                "mac",
                "harden",
                "SELinux is permissive: it logs policy violations but blocks nothing.",
                tags=["mac", "selinux"],
                techniques=["T1562.001"],
                impact=6.0,
                level="medium",
                action="Check recent denials (`ausearch -m avc -ts recent`), fix or allow what is legitimate, "
                "then `setenforce 1` and SELINUX=enforcing in /etc/selinux/config.",
            )
        return _a(f, "mac", "informational", "SELinux is enforcing.", tags=["mac"], listed=False)
    if fid == "mac_none":
        return _a(
            f,
            "mac",
            "harden",
            "Neither SELinux nor AppArmor is active: no mandatory access control confines services.",
            tags=["mac"],
            techniques=["T1562.001"],
            impact=7.0,
            level="medium",
            action="Enable the distribution's MAC (AppArmor on Debian/Ubuntu, SELinux on RHEL/Fedora), in "
            "complain/permissive mode first.",
        )
    return _informational(f, host, "mac")


MOUNT_RULES = {  # id prefix -> verdict, rationale, action
    "mount:tmp-noexec-missing": (
        "expected",
        "{mount} allows execution, as stock installs do: noexec there breaks package maintainer "
        "scripts, build tools and programs that unpack helpers into /tmp. Expected, no action.",
        None,
    ),
    "mount:tmp-nosuid-missing": (
        "harden",
        "{mount} is a separate mount without nosuid: nothing legitimate runs set-id from there.",
        "Add nosuid to {mount}'s options (/etc/fstab or a tmp.mount drop-in) and remount.",
    ),
    "mount:tmp-nodev-missing": (
        "harden",
        "{mount} is a separate mount without nodev: device nodes there are never needed.",
        "Add nodev to {mount}'s options and remount.",
    ),
    "mount:sensitive-nosuid-missing": (
        "harden",
        "{mount} lacks nosuid; stock installs leave it off, and adding it is safe for data mounts.",
        "Add nosuid to {mount} in /etc/fstab when nothing there needs set-id programs.",
    ),
    "mount:sensitive-nodev-missing": (
        "harden",
        "{mount} lacks nodev; adding it is safe for mounts that hold no device nodes.",
        "Add nodev to {mount} in /etc/fstab.",
    ),
}


def assess_mount(f: dict, host: Host) -> Assessment:
    for prefix, (verdict, text, action) in MOUNT_RULES.items():
        if f["id"].startswith(prefix + ":"):
            mount = md(f, "mount") or f["id"].rsplit(":", 1)[-1]
            return _a(
                f,
                "mounts",
                verdict,
                text.format(mount=mount),
                tags=["mount_options"],
                action=action.format(mount=mount) if action else None,
                allowlist_reason="stock mount options" if verdict == "expected" else None,
            )
    return _informational(f, host, "mounts")


SYSTEMD_KEY_MEANINGS = {
    "NoNewPrivileges": "set-id programs cannot raise the service's privileges",
    "ProtectSystem": "/usr, /boot and /etc are read-only to the service",
}


def _unit_ioc_tie(f: dict, unit: str, host: Host, packaged: bool) -> str | None:
    """Why `unit` belongs to an IOC: the ExecStart the scan recorded names a suspect, a deleted file or scratch
    space; or, for a unit no package ships, its name is a suspicious program's (xmrig.service) or a suspect's.
    A packaged unit's name never ties it: malware that calls itself sshd does not make ssh.service its own."""
    exec_start = md(f, "ExecStart") or md(f, "exec_start") or md(f, "exec")
    for exe, pid, _ in host.suspects:
        if exec_start and exe and exe in exec_start:
            return f"its ExecStart runs the suspicious process {exe} (pid {pid})"
    if exec_start and ("(deleted)" in exec_start or exec_start.split(" ")[0].startswith(ioc_facts.SCRATCH_ROOTS)):
        return f"its ExecStart ({exec_start[:80]}) runs a program from scratch space or a deleted file"
    if packaged:
        return None
    stem = unit.rsplit(".", 1)[0].split("@", 1)[0].lower()
    strong = [n for n in ioc_facts.suspicious_names(stem) if n in ioc_facts.STRONG_NAMES]
    if strong:
        return f"its name carries {strong[0]}, {ioc_facts.SUSPICIOUS_NAMES[strong[0]][0]}"
    for exe, pid, _ in host.suspects:
        if exe.rsplit("/", 1)[-1].lower() == stem:
            return f"it is named after the suspicious process {exe} (pid {pid})"
    return None


def _unit_evidence(f: dict, host: Host, unit: str, key: str, why: str | None) -> Assessment:
    """A unit tied to an IOC, or a unit no package ships on a host running a contained process: evidence of
    persistence, never a hardening candidate (hardening the intruder's unit keeps it running)."""
    suspect = next(((exe, pid) for exe, pid, v in host.suspects if v == "contain"), None) or (
        host.suspects[0][:2] if host.suspects else ("the suspicious process", "?")
    )
    preserve = (
        f"Treat {unit} as evidence of persistence: save it before anything changes (`systemctl cat {unit}`, "
        f"`systemctl status {unit}`, copy its unit file with `cp -a` and `stat` it, `journalctl -u {unit}`), "
        "hash the program its ExecStart names"
    )
    if why:
        return _a(
            f,
            "systemd_units",
            "contain",
            f"{unit} is tied to an indicator of compromise: {why}.",
            f"It is the intruder's persistence, not a service to harden: adding {key} would only keep it running "
            "in a tidier sandbox.",
            tags=["service_persistence", "ioc_unit"],
            techniques=["T1543.002"],
            headline=f"persistence unit {unit} of the suspicious process",
            action=f"{preserve}; only after the process evidence is preserved (`cp /proc/<pid>/exe`, `gcore`) "
            f"disable it (`systemctl disable --now {unit}`) as part of eradication.",
            action_key=f"unit-evidence:{unit}",
        )
    return _a(
        f,
        "systemd_units",
        "investigate",
        f"{unit} is not shipped by any {host.distro} package, on a host where {suspect[0]} (pid {suspect[1]}) "
        "runs: a unit nobody installed is where an intruder persists.",
        f"Cleared by: an ExecStart that names a packaged or documented program; confirmed by: an ExecStart that "
        f"names {suspect[0]}, scratch space or a deleted file. Hardening it ({key}) waits until it is cleared.",
        tags=["service_persistence", "custom_unit"],
        techniques=["T1543.002"],
        level="high",
        headline=f"unit {unit} that no package ships, on a compromised host",
        action=f"{preserve}, and compare it with {suspect[0]} before changing it.",
        action_key=f"unit-evidence:{unit}",
    )


def assess_systemd(f: dict, host: Host) -> Assessment:
    key, unit = md(f, "key"), md(f, "unit")
    if f["severity"] == "info":
        return _a(f, "systemd_units", "informational", f"{unit} sets {key}.", tags=["service_hardening"], listed=False)
    package = packaged_unit(unit, host.family)
    why = _unit_ioc_tie(f, unit, host, package is not None)
    if why or (package is None and host.compromised):
        return _unit_evidence(f, host, unit, key, why)
    if package:
        return _a(
            f,
            "systemd_units",
            "expected",
            f"{unit} is {package}'s stock unit, which ships without {key} like most distribution units.",
            tags=["service_hardening", "stock_unit"],
            listed=False,
            allowlist_reason=f"stock unit from {package}",
        )
    breaks = breaking_class(unit, key)
    if breaks:
        return _a(
            f,
            "systemd_units",
            "expected",
            f"{unit} {breaks.what}: never add {key} to it, because {breaks.reason}.",
            tags=["service_hardening", "breaks_when_sandboxed"],
            listed=False,
            allowlist_reason=f"{key} would break what {unit} starts",
        )
    if key in SYSTEMD_KEY_MEANINGS:
        value = md(f, "expected") or "yes"
        return _a(
            f,
            "systemd_units",
            "harden",
            f"{unit} is not a distribution unit and lacks {key} ({SYSTEMD_KEY_MEANINGS[key]}).",
            tags=["service_hardening", "custom_unit"],
            action=f"Add {key}={value} to a drop-in for {unit} (`systemctl edit {unit}`), restart it and check "
            "that it still works.",
            action_key=f"unit-dropin:{unit}",
            action_merge=(
                f"Add {{details}} to a drop-in for {unit} (`systemctl edit {unit}`), restart it and check that "
                "it still works.",
                f"{key}={value}",
            ),
        )
    return _a(
        f, "systemd_units", "harden", f"{unit} lacks {key}.", tags=["service_hardening", "custom_unit"], listed=False
    )


AUDIT_RULE_TEXT = "Without execve auditing there is no record of what ran on {host}: an intrusion leaves no trail."


def assess_auditd(f: dict, host: Host) -> Assessment:
    fid = f["id"]
    if f["severity"] == "info":
        return _a(f, "auditd", "informational", f.get("description", ""), tags=["audit"], listed=False)
    audit_action = (
        "Install auditd and load rules for execve, setuid/setgid, chmod/chown and module loading "
        "(`augenrules --load`); ship the log off the host."
    )
    if fid == "auditd:rules:missing":
        return _a(
            f,
            "auditd",
            "harden",
            "No audit rules are loaded: executions, privilege changes and module loads leave no record.",
            tags=["audit"],
            action=audit_action,
            impact=5.0,
        )
    if fid == "auditd:execve:absent":
        return _a(
            f,
            "auditd",
            "harden",
            AUDIT_RULE_TEXT.format(host=host.hostname),
            tags=["audit"],
            action=audit_action,
            impact=5.0,
        )
    return _a(
        f, "auditd", "harden", f"{f.get('title', fid)}: {f.get('description', '')}.", tags=["audit"], listed=False
    )


# -- integrity, signatures, traces --------------------------------------------------------------------

RPM_VERIFY_ATTRIBUTES = {
    "S": "size",
    "M": "mode",
    "5": "digest",
    "D": "device",
    "L": "link target",
    "U": "owner",
    "G": "group",
    "T": "modification time",
    "P": "capabilities",
}


def integrity_path(f: dict) -> str:
    """The file of a `pkg_mismatch` finding. 5.0.0 stores `path` as `line[9:]` of an `rpm -Va` line, which keeps
    the padding and the file-type marker (`"  c /etc/sudoers"`, `"    /usr/bin/ps"`); the path is the last word."""
    words = (md(f, "raw")[9:] or md(f, "path")).split()
    return words[-1] if words and words[-1].startswith("/") else md(f, "path").strip()


def assess_integrity(f: dict, host: Host) -> Assessment:
    fid, path = f["id"], integrity_path(f)
    if fid.startswith("pkg_mismatch:"):
        raw = md(f, "raw")
        config = path.startswith("/etc/") or re.search(r"\sc\s", raw + " ") is not None
        changed = [RPM_VERIFY_ATTRIBUTES[c] for c in raw[:9] if c in RPM_VERIFY_ATTRIBUTES]
        if not config and changed and not {"size", "digest"} & set(changed):
            return _a(
                f,
                "integrity",
                "review",
                f"{path}: its {', '.join(changed)} differ(s) from the package database ({raw[:9]}), its content "
                "does not (no S or 5 flag): a permission, owner or time change, e.g. a hardening step that "
                "removed a set-id bit, not a replaced binary.",
                tags=["attributes_modified"],
                action=f"Check who changed {path} (`stat {path}`, `rpm -qf {path}` and its packaged mode with "
                f"`rpm -q --dump -f {path}`) and keep the change if it was a hardening step.",
            )
        if config:
            return _a(
                f,
                "integrity",
                "review",
                f"{path} differs from its package: a locally edited configuration "
                "file, which is normal if an administrator changed it.",
                tags=["config_modified"],
                action=f"Diff {path} against the packaged version and confirm the change was intended.",
            )
        return _a(
            f,
            "integrity",
            "investigate",
            f"{path} no longer matches its package ({raw.split(' ')[0]}): a replaced system binary, or a "
            "local rebuild.",
            "Cleared by: a documented local change; confirmed by: a hash that matches no package version.",
            tags=["binary_modified"],
            techniques=["T1554"],
            level="high",
            impact=8.0,
            action=f"Compare {path} with the package's copy (download the package and diff hashes); if it "
            "differs, treat the host as compromised and reinstall from a trusted source after forensics.",
        )
    if fid == "integrity_summary" and f["severity"] != "info":
        return _a(
            f,
            "integrity",
            "review",
            f"Package verification found {md(f, 'pkg_mismatch_count')} "
            "mismatching file(s); each is assessed on its own.",
            tags=["integrity"],
        )
    return _informational(f, host, "integrity")


YARA_PATTERNS = [  # substring of the matched pattern -> verdict, what it is, technique
    ("stratum+tcp", "contain", "a cryptocurrency miner's pool address", "T1496"),
    ("/dev/tcp/", "contain", "a bash reverse shell", "T1059.004"),
    ("sliver", "contain", "the Sliver C2 implant", "T1071"),
    ("xmrig", "contain", "the XMRig miner", "T1496"),
]


def assess_yara(f: dict, host: Host) -> Assessment:
    pattern, path = md(f, "pattern"), md(f, "path") or f["id"].split(":yara:")[0]
    for needle, verdict, what, technique in YARA_PATTERNS:
        if needle in pattern.lower():
            return _a(
                f,
                "yara",
                verdict,
                f"{path} contains '{pattern}', the signature of {what}.",
                tags=["malware_signature"],
                techniques=[technique],
                action=f"Isolate {host.hostname}, preserve {path} (hash, copy), find which process runs it "
                "and how it arrived, then remove it.",
            )
    return _a(
        f,
        "yara",
        "investigate",
        f"{path} contains the pattern '{pattern}'.",
        tags=["signature_match"],
        level="high",
        action=f"Check {path}: owner and package (`{host.tool('owner', path=path)}`), hash, and which process uses it.",
    )


def assess_ebpf(f: dict, host: Host) -> Assessment:
    fid = f["id"]
    if fid.startswith("ebpf:error"):
        return _a(
            f,
            "ebpf_exec_trace",
            "operational",
            f"{f.get('title', fid)}: the exec trace did not run, a coverage gap rather than a security signal.",
            tags=["operational"],
            operational=True,
        )
    command = md(f, "command")
    if f["severity"] in ("medium", "high", "critical") or re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", command):
        return _a(
            f,
            "ebpf_exec_trace",
            "investigate",
            f"Observed execution: {command or f.get('description', '')}.",
            "Piping a download into a shell runs code nobody reviewed." if "|" in command else "",
            tags=["exec_trace"],
            techniques=["T1059.004", "T1105"] if "|" in command else ["T1059.004"],
            level="high",
            action=f"Find the parent of pid {md(f, 'pid') or '?'} and what the command fetched.",
        )
    return _informational(f, host, "ebpf_exec_trace")


def assess_network(f: dict, host: Host) -> Assessment:
    if f["severity"] in ("info", "low"):
        return _informational(f, host, "network")
    return _a(
        f,
        "network",
        "review",
        f"{f.get('title', '')}: {f.get('description', '')}.",
        tags=["network"],
        action=f"Identify the process behind {f['id']} (`ss -tulpn`) and whether it should be reachable.",
    )


def _informational(f: dict, host: Host, scanner: str) -> Assessment:
    if f["severity"] == "error" or f["id"].endswith(":error"):
        return _a(
            f,
            scanner,
            "operational",
            f"The {scanner} scanner failed ({f.get('description', '')}): a coverage gap.",
            tags=["operational"],
            operational=True,
        )
    if f["severity"] in ("info", "low"):
        return _a(f, scanner, "informational", f.get("description") or f.get("title", ""), tags=[scanner], listed=False)
    return _a(f, scanner, "review", f"{f.get('title', '')}: {f.get('description', '')}.", tags=[scanner])


RULES = {
    "suid_sgid": assess_suid,
    "world_writable": assess_world_writable,
    "ioc": assess_ioc,
    "kernel_params": assess_kernel_param,
    "kernel_hardening": assess_kernel_hardening,
    "modules": assess_module,
    "mac": assess_mac,
    "mounts": assess_mount,
    "systemd_units": assess_systemd,
    "auditd": assess_auditd,
    "integrity": assess_integrity,
    "yara": assess_yara,
    "ebpf_exec_trace": assess_ebpf,
    "network": assess_network,
}


def assess_finding(scanner: str, finding: dict, host: Host) -> Assessment:
    """The verdict for one raw finding (see module docstring)."""
    if finding.get("severity") == "error" or str(finding.get("id", "")).endswith(":error"):
        assessment = _informational(finding, host, scanner)  # any scanner's exception: a coverage gap
    else:
        assessment = RULES.get(scanner, lambda f, h: _informational(f, h, scanner))(finding, host)
    assessment.tags = sorted(set(assessment.tags) | {f"scanner:{scanner}", assessment.verdict})
    return assessment


def assess_report(report: dict) -> list[tuple[dict, Assessment]]:
    """(raw finding, assessment) for every finding of a report, in report order."""
    host = Host.from_report(report)
    return [
        (f, assess_finding(r.get("scanner", ""), f, host))
        for r in report.get("results", [])
        for f in r.get("findings", [])
    ]
