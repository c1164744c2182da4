"""Everything sys-scan 5.0.0 can write, as data: report keys, and for each scanner the finding forms (id,
title, severities, description, metadata keys and their value forms), read from the source at a2ceff7.

This is the yardstick of `fidelity.py`, written apart from the generator so that it checks the generator
rather than repeating it, and applied to the real fixture too (which must show no defect). A form's
`title` and `description` are templates: `{name}` is a group of the id pattern or a metadata key; the rest
is literal. Value forms are regular expressions matched against the whole value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secml_recipes.knowledge_files import INT, STR, load_table, mapping, record, seq

# The spec's own transcription of the C++ source (spec/5_0_0.yaml), never the generator's tables: a check that
# shared its knowledge with what it checks could not fail. tests/test_knowledge_files.py compares the two.
_SYSCTL_CHECK = record(dict.fromkeys(("path", "id", "title", "expect", "sev", "bad_desc", "good_desc"), STR))
_SOURCE = load_table(
    __package__, "spec/5_0_0.yaml", record({"severity_score": mapping(INT), "hardening_sysctls": seq(_SYSCTL_CHECK)})
)
SEVERITY_SCORE: dict[str, int] = _SOURCE["severity_score"]
# (path, id without "sysctl:", title, expected, severity, bad description, good description), as v5_0_0 spells them
HARDENING_SYSCTLS: tuple[tuple[str, ...], ...] = tuple(
    (c["path"], c["id"].removeprefix("sysctl:"), c["title"], c["expect"], c["sev"], c["bad_desc"], c["good_desc"])
    for c in _SOURCE["hardening_sysctls"]
)

TOP_KEYS = {"meta", "summary", "results", "collection_warnings", "scanner_errors", "summary_extension"}
OPTIONAL_TOP_KEYS = {"compliance_summary", "partial_warnings"}
META_KEYS = {
    "$schema",
    "arch",
    "cmdline",
    "effective_config",
    "egid",
    "euid",
    "gid",
    "hostname",
    "json_schema_version",
    "kernel",
    "os_id",
    "os_pretty",
    "os_version",
    "provenance",
    "tool_version",
    "uid",
    "user",
}
OPTIONAL_META_KEYS = {"normalized_time", "timings"}
PROVENANCE_KEYS = {
    "build_type",
    "compiler_id",
    "compiler_version",
    "cxx_flags",
    "cxx_standard",
    "git_commit",
    "slsa_level",
}
EFFECTIVE_CONFIG_KEYS = {
    "canonical",
    "compact",
    "compliance",
    "containers",
    "fs_hygiene",
    "fs_world_writable_limit",
    "hardening",
    "integrity",
    "integrity_pkg_rehash",
    "integrity_pkg_rehash_limit",
    "integrity_pkg_verify",
    "ioc_env_trust",
    "ioc_exec_trace",
    "ioc_exec_trace_seconds",
    "modules_anomalies_only",
    "modules_hash",
    "modules_summary_only",
    "ndjson",
    "parallel",
    "parallel_max_threads",
    "pretty",
    "process_inventory",
    "rules_enable",
    "sarif",
    "seccomp",
    "seccomp_strict",
}
OPTIONAL_EFFECTIVE_CONFIG_KEYS = {"min_severity", "fail_on_severity"}
SUMMARY_KEYS = {
    "duration_ms",
    "finding_count_emitted",
    "finding_count_total",
    "findings_per_second",
    "finished_at",
    "scanner_count",
    "scanners_with_findings",
    "severity_counts",
    "severity_counts_emitted",
    "slowest_scanner",
    "started_at",
}
RESULT_KEYS = {"elapsed_ms", "end_time", "finding_count", "findings", "scanner", "start_time"}
FINDING_KEYS = {"base_severity_score", "description", "id", "metadata", "severity", "title"}
SCANNERS = (
    "processes",
    "network",
    "kernel_params",
    "modules",
    "world_writable",
    "suid_sgid",
    "ioc",
    "mac",
    "mounts",
    "kernel_hardening",
    "systemd_units",
    "auditd",
    "containers",
    "integrity",
    "yara",
    "ebpf_exec_trace",
    "pci_compliance",
)
# collection_warnings: (scanner, code, detail pattern)
WARNINGS = (
    ("processes", "proc_unreadable_cmdline", r"/proc/\d+/cmdline"),
    ("processes", "proc_unreadable_status", r"/proc/\d+/status"),
    ("processes", "proc_exe_symlink_unreadable", r"/proc/\d+/exe"),
    ("kernel_params", "param_unreadable", r"/proc/sys/\S+"),
    ("modules", "decompress_fail", r"\S+\.ko\.(xz|gz)"),
    ("mounts", "mounts_unreadable", r"/proc/mounts"),
    (
        r"tcp6?|udp6?",
        "net_file_unreadable",
        r"/proc/net/(tcp|udp)6?|(TCP|UDP) socket scan truncated at \d+ sockets "
        r"\(max_sockets limit\)",
    ),
)

INT = r"\d+"
TRUE = r"true"
BOOL = r"true|false"
PATH = r"/.*"
ANY = r".*"
ANY1 = r".+"
CSV_NAMES = r"[A-Za-z0-9_\-]+(,[A-Za-z0-9_\-]+)*"
HEX12 = r"[0-9a-f]{12}"


@dataclass(frozen=True)
class Form:
    name: str
    id: str
    title: str
    severities: tuple[str, ...]
    descriptions: tuple[str, ...]
    values: dict = field(default_factory=dict)  # metadata key -> value pattern
    required: tuple[str, ...] = ()


def _f(name, id_, title, severities, descriptions, values=None, required=()):
    return Form(
        name,
        id_,
        title,
        tuple(severities.split()),
        tuple(descriptions if isinstance(descriptions, tuple) else (descriptions,)),
        values or {},
        required,
    )


UNIT_KEYS = (
    "NoNewPrivileges|PrivateTmp|ProtectSystem|ProtectHome|CapabilityBoundingSet|RestrictNamespaces|"
    "RestrictSUIDSGID|ProtectKernelModules|ProtectKernelTunables|ProtectControlGroups|MemoryDenyWriteExecute|"
    "RestrictRealtime|LockPersonality"
)
UNIT_DESCRIPTIONS = tuple(
    d
    for key, bad, good in (
        ("NoNewPrivileges", "NoNewPrivileges not set to yes", "NoNewPrivileges enforced"),
        ("PrivateTmp", "PrivateTmp not enabled", "PrivateTmp enabled"),
        ("ProtectSystem", "ProtectSystem not strict", "ProtectSystem strict"),
        ("ProtectHome", "ProtectHome not read-only", "ProtectHome read-only"),
        ("CapabilityBoundingSet", "CapabilityBoundingSet not present (no reduction)", "CapabilityBoundingSet present"),
        *(
            (k, f"{k} not enabled", f"{k} enabled")
            for k in (
                "RestrictNamespaces",
                "RestrictSUIDSGID",
                "ProtectKernelModules",
                "ProtectKernelTunables",
                "ProtectControlGroups",
                "MemoryDenyWriteExecute",
                "RestrictRealtime",
                "LockPersonality",
            )
        ),
    )
    for d in (good, bad, f"{bad} (missing)")
)
MODULE_SUMMARY_VALUES = {
    "total": INT,
    "sample": r"[A-Za-z0-9_\-,]*",
    "out_of_tree_count": INT,
    "out_of_tree_sample": CSV_NAMES,
    "unsigned_count": INT,
    "compressed_count": INT,
    "compressed_scanned": INT,
    "compressed_unsigned": INT,
    "unsigned_sample": CSV_NAMES,
    "compressed_unsigned_sample": CSV_NAMES,
    "missing_file_count": INT,
    "missing_file_sample": CSV_NAMES,
    "hidden_proc_only_count": INT,
    "hidden_proc_only_sample": CSV_NAMES,
    "sysfs_only_count": INT,
    "sysfs_only_sample": CSV_NAMES,
    "taint_value": INT,
    "taint_flags": r"[A-Z_]+(,[A-Z_]+)*",
    "kallsyms_readable": r"yes|no",
    "kallsyms_sampled": INT,
    "kallsyms_low": TRUE,
    "kallsyms_all_zero": TRUE,
}

FORMS: dict[str, tuple[Form, ...]] = {
    "processes": (
        _f(
            "process",
            r"(?P<pid>\d+)",
            "Process {pid}",
            "info",
            (ANY1,),
            {
                "uid": INT,
                "gid": INT,
                "container_id": HEX12,
                "exe_path": PATH,
                "sha256": r"[0-9a-f]{64}|\(error\)|"
                r"\(disabled\)",
            },
        ),
    ),
    "network": (),  # add_finding drops every socket finding (filed under tcp/tcp6/udp/udp6)
    "kernel_params": tuple(
        _f(
            f"kernel_param:{path.rsplit('/', 1)[1]}",
            re.escape(path),
            re.escape(path),
            f"info {sev}",
            (desc,),
            {"current": ANY, "desired": re.escape(desired), "status": "mismatch"},
            ("current", "desired"),
        )
        for path, desired, desc, sev in (
            ("/proc/sys/kernel/randomize_va_space", "2", "ASLR should be full (2)", "medium"),
            ("/proc/sys/kernel/kptr_restrict", "1", "Kernel pointer addresses restricted", "low"),
            ("/proc/sys/net/ipv4/conf/all/rp_filter", "1", "Reverse path filtering", "low"),
            ("/proc/sys/net/ipv4/ip_forward", "0", "IP forwarding disabled unless a router", "info"),
        )
    ),
    "modules": (
        _f("module", r"(?P<name>[A-Za-z0-9_\-]+)", "Module {name}", "info", ("Loaded kernel module",)),
        _f(
            "module_anomaly",
            r"(?P<name>[A-Za-z0-9_\-]+)",
            "Module anomaly: {name}",
            "medium high",
            (
                "Kernel module anomaly",
                "Unsigned kernel module detected",
                "Out-of-tree kernel module",
                "Module file missing on disk",
                "Module present in /proc/modules but missing in /sys/module",
            ),
            {
                "unsigned": TRUE,
                "out_of_tree": TRUE,
                "missing_file": TRUE,
                "hidden_sysfs": TRUE,
                "wx_section": TRUE,
                "large_text_section": INT,
                "suspicious_section_name": ANY1,
                "sha256": r"[0-9a-f]{64}",
                "path": r"\S+",
            },
        ),
        _f(
            "module_summary",
            r"module_summary",
            "Kernel modules summary",
            "info medium high",
            ("Loaded kernel modules inventory",),
            MODULE_SUMMARY_VALUES,
            ("total", "sample", "out_of_tree_count", "unsigned_count", "kallsyms_readable"),
        ),
    ),
    "world_writable": (
        _f(
            "world_writable_file",
            r"(?P<path>/.+)",
            "World-writable file",
            "low medium high",
            ("File is world writable",),
        ),
        _f(
            "setuid_interpreter",
            r"(?P<path>/.+)",
            "Setuid interpreter",
            "critical",
            ("Setuid shell or script interpreter",),
            {"rule": "setuid_interpreter"},
            ("rule",),
        ),
        _f(
            "file_capability",
            r"(?P<path>/.+)",
            "File capabilities binary",
            "medium",
            ("Binary has file capabilities set",),
            {"rule": "file_capability"},
            ("rule",),
        ),
        _f(
            "path_dir",
            r"(?P<path>/.+)",
            "World-writable PATH directory",
            "high",
            ("Executable search path directory is world-writable",),
            {"rule": "path_dir_world_writable"},
            ("rule",),
        ),
        _f(
            "dangling_suid",
            r"(?P<path>/.+):dangling_suid_link",
            "Dangling SUID hardlink",
            "high",
            ("SUID binary hardlinked into temporary/untrusted location",),
            {"rule": "dangling_suid_hardlink", "paths": r"/.+"},
            ("rule", "paths"),
        ),
    ),
    "suid_sgid": (
        _f(
            "suid",
            r"(?P<path>/(bin|sbin|usr/bin|usr/sbin|usr/local/bin|usr/local/sbin)/.+)",
            "SUID/SGID binary",
            "low medium high critical",
            ("Binary has SUID or SGID bit set",),
            {"expected": TRUE},
        ),
    ),
    "ioc": (
        _f(
            "process_ioc",
            r"(?P<exe>.+):(?P<pid>\d+)",
            "Process IOC Detected",
            "low medium high critical",
            (
                "Process with deleted executable: {exe}",
                "Process with world-writable executable: {exe}",
                "Process with suspicious environment: {exe}",
                "Process with suspicious patterns: {exe}",
            ),
            {
                "pid": INT,
                "command": ANY,
                "pattern_match": TRUE,
                "deleted_executable": TRUE,
                "world_writable_executable": TRUE,
                "environment_issue": TRUE,
            },
            ("pid", "command"),
        ),
    ),
    "mac": (
        _f(
            "selinux",
            r"selinux",
            "SELinux status",
            "info low medium high",
            ("SELinux detection",),
            {"present": BOOL, "enforcing": BOOL, "permissive": BOOL, "config_mode": r"[a-z]*"},
            ("present",),
        ),
        _f(
            "apparmor",
            r"apparmor",
            "AppArmor status",
            "info medium high",
            ("AppArmor detection",),
            {
                "enabled": BOOL,
                "mode_line": ANY1,
                "profiles_seen": INT,
                "complain_count": INT,
                "unconfined_critical": INT,
            },
            ("enabled",),
        ),
        _f("mac_none", r"mac_none", "No MAC enforcement", "low high", ("Neither SELinux nor AppArmor appears active",)),
        _f(
            "mac_dual",
            r"mac_dual",
            "Dual MAC layers",
            "info",
            ("Both SELinux and AppArmor appear present (double-check for conflicts)",),
        ),
    ),
    "mounts": tuple(
        _f(
            f"mount:{rule}",
            rf"mount:{re.escape(rule)}:(?P<mount>/.*)",
            title,
            sev,
            (desc,),
            {"mount": PATH, "device": ANY1, "fstype": ANY1, "options": ANY1},
            ("mount", "device", "fstype", "options"),
        )
        for rule, sev, title, desc in (
            (
                "tmp-noexec-missing",
                "medium",
                "/tmp style mount missing noexec",
                "Temporary directory mount lacks noexec which can allow execution from world-writable space",
            ),
            (
                "tmp-nosuid-missing",
                "medium",
                "/tmp style mount missing nosuid",
                "Temporary directory mount lacks nosuid lowering barrier to SUID exploitation",
            ),
            (
                "tmp-nodev-missing",
                "low",
                "/tmp style mount missing nodev",
                "Temporary directory mount lacks nodev allowing device nodes",
            ),
            ("sensitive-nosuid-missing", "low", "Sensitive mount missing nosuid", "Expected nosuid on sensitive mount"),
            ("sensitive-nodev-missing", "low", "Sensitive mount missing nodev", "Expected nodev on non-device mount"),
            (
                "home-exec",
                "info",
                "/home mounted exec",
                "Home directory allows execution; consider noexec for stricter hardening",
            ),
            ("bind-generic", "info", "Bind mount present", "Non-standard bind mount; review necessity"),
        )
    ),
    "kernel_hardening": (
        _f(
            "lockdown_disabled",
            r"kernel:lockdown:disabled",
            "Kernel lockdown inactive",
            "medium",
            ("Kernel lockdown not enforced; consider integrity or confidentiality mode",),
            {"raw": ANY1},
            ("raw",),
        ),
        _f(
            "lockdown_integrity",
            r"kernel:lockdown:integrity",
            "Kernel lockdown integrity mode",
            "info",
            ("Kernel lockdown integrity mode active",),
            {"raw": ANY1},
            ("raw",),
        ),
        _f(
            "lockdown_confidentiality",
            r"kernel:lockdown:confidentiality",
            "Kernel lockdown confidentiality mode",
            "info",
            ("Kernel lockdown confidentiality mode active",),
            {"raw": ANY1},
            ("raw",),
        ),
        _f(
            "efi",
            r"kernel:secureboot:efi",
            "EFI firmware detected",
            "info",
            ("System booted with EFI (secure boot state heuristic)",),
            {"efi": "present"},
            ("efi",),
        ),
        _f(
            "dbx",
            r"kernel:secureboot:dbx-missing",
            "EFI dbx revocation list not detected",
            "low",
            ("Could not locate dbx revocation entries (heuristic)",),
        ),
        _f(
            "ima",
            r"kernel:ima:policy",
            "IMA policy present",
            "info",
            ("IMA policy includes appraisal", "IMA policy lacks explicit appraisal"),
            {"appraise": r"yes|no"},
            ("appraise",),
        ),
        _f("tpm_present", r"kernel:tpm:present", "TPM device present", "info", ("Trusted Platform Module detected",)),
        _f(
            "tpm_absent",
            r"kernel:tpm:absent",
            "No TPM device",
            "low",
            ("TPM not detected (may reduce attestation options)",),
        ),
        *(
            _f(
                f"sysctl:{id_}",
                rf"kernel:sysctl:{id_}",
                re.escape(title),
                f"info {sev}",
                (good, bad),
                {"path": re.escape(path), "value": ANY1, "expected": re.escape(exp)},
                ("path", "value", "expected"),
            )
            for path, id_, title, exp, sev, bad, good in HARDENING_SYSCTLS
        ),
    ),
    "systemd_units": (
        _f(
            "unit",
            rf"systemd:(?P<key>{UNIT_KEYS}):(?P<unit>.+)",
            "{unit} {key}",
            "info low medium",
            UNIT_DESCRIPTIONS,
            {"unit": ANY1, "key": UNIT_KEYS, "value": ANY, "expected": r"yes|strict|read-only|"},
            ("unit", "key", "expected"),
        ),
    ),
    "auditd": (
        *(
            _f(f"audit:{id_}", rf"auditd:{id_}", re.escape(title), "info medium", (desc, f"{title} missing"))
            for id_, title, desc in (
                ("execve", "Audit execve present", "Execve syscall auditing present"),
                ("setuid", "Audit setuid present", "setuid syscall auditing present"),
                ("setgid", "Audit setgid present", "setgid syscall auditing present"),
                ("chmod", "Audit chmod present", "chmod syscall auditing present"),
                ("chown", "Audit chown present", "chown syscall auditing present"),
                ("capset", "Audit capset present", "capset syscall auditing present"),
                ("insmod", "Module load auditing", "Module load operations likely audited"),
            )
        ),
        _f(
            "execve_absent",
            r"auditd:execve:absent",
            "Execve auditing missing",
            "high",
            ("Audit rules lack -S execve; process execution coverage incomplete",),
        ),
        _f(
            "rules_missing",
            r"auditd:rules:missing",
            "No auditd rules detected",
            "medium",
            ("Could not read auditd rules files",),
        ),
    ),
    "containers": (
        _f(
            "container",
            r"container:(?P<cid>[0-9a-fA-F]{12}|kubepods)",
            "Container detected {cid}",
            "info",
            ("Container runtime context",),
            {"runtime": r"docker|containerd|podman|crio|unknown|kube", "pid": INT, "cgroup": ANY1},
            ("runtime", "pid", "cgroup"),
        ),
        _f(
            "container_none",
            r"container:none",
            "No containers detected",
            "info",
            ("No container cgroup signatures found",),
        ),
    ),
    "integrity": (
        _f(
            "pkg_mismatch",
            r"pkg_mismatch:\d+",
            "Package file mismatch",
            "medium",
            ("dpkg verification mismatch", "rpm verification mismatch"),
            {"raw": ANY1, "path": ANY1},
            ("raw",),
        ),
        _f(
            "pkg_rehash",
            r"pkg_rehash:(?P<path>.+)",
            "Package mismatch file hash",
            "info",
            ("Recomputed SHA256 for mismatched file",),
            {"path": ANY1, "sha256": r"[0-9a-f]{64}"},
            ("path", "sha256"),
        ),
        _f(
            "integrity_summary",
            r"integrity_summary",
            "Integrity summary",
            "info medium high",
            ("Package / integrity verification",),
            {
                "pkg_tool": r"dpkg|rpm|none",
                "pkg_mismatch_count": INT,
                "pkg_mismatch_sample": ANY1,
                "ima_entries": INT,
                "ima_fail": INT,
            },
            ("pkg_mismatch_count",),
        ),
    ),
    "yara": (
        _f(
            "yara",
            r"(?P<path>/(usr/bin|bin|usr/local/bin)/.+):yara:(?P<pat>.{1,16})",
            "Pseudo-YARA pattern match",
            "medium",
            ("Pattern found in file prefix",),
            {"pattern": ANY1, "path": PATH},
            ("pattern", "path"),
        ),
    ),
    "ebpf_exec_trace": (
        _f(
            "ebpf_disabled",
            r"ebpf:disabled",
            "eBPF support not available at runtime",
            "info",
            (
                "eBPF tools not installed, incompatible kernel, or missing capabilities. Using alternative detection "
                "methods.",
            ),
            {"alternative_detection": TRUE, "source": "ebpf_fallback", "detection_method": "runtime_check"},
            ("alternative_detection", "source", "detection_method"),
        ),
        _f(
            "proc_exec",
            r"proc\.exec\.detected",
            "Process execution detected: {comm} (PID: {pid})",
            "info",
            ("New process execution detected via /proc monitoring",),
            {
                "pid": INT,
                "comm": r"\S{1,64}",
                "ppid": INT,
                "source": "proc_fallback",
                "detection_method": "proc_polling",
            },
            ("pid", "comm", "ppid", "source", "detection_method"),
        ),
        _f(
            "proc_monitoring_complete",
            r"proc\.monitoring\.complete",
            "Process monitoring completed via /proc filesystem",
            "info",
            ("Alternative process monitoring completed using /proc polling method",),
            {"duration_seconds": INT, "source": "proc_fallback", "method": "filesystem_polling"},
            ("duration_seconds", "source", "method"),
        ),
        *(
            _f(f"ebpf_error:{s}", rf"ebpf:error:{s}", re.escape(t), "high", (d,))
            for s, t, d in (
                ("open", "eBPF skeleton open failed", "Failed to open eBPF skeleton"),
                ("load", "eBPF program load failed", "Failed to load eBPF program"),
                ("attach", "eBPF attach failed", "Failed to attach eBPF program"),
                ("ringfd", "eBPF ring buffer fd failed", "Failed to acquire ring buffer file descriptor"),
                ("ringbuf", "eBPF ring buffer create failed", "Failed to create eBPF ring buffer"),
            )
        ),
    ),
    "pci_compliance": tuple(
        _f(
            f"pci:{c}",
            rf"pci_dss_4_0:{re.escape(c)}",
            re.escape(f"pci_dss_4_0 control {c}"),
            sev,
            (req,),
            {
                "standard": "pci_dss_4_0",
                "control_id": re.escape(c),
                "requirement": re.escape(req),
                "passed": BOOL,
                "rationale": r"not_applicable|test_exception",
                "not_applicable": TRUE,
            },
            ("standard", "control_id", "requirement", "passed"),
        )
        for c, req, sev in (
            ("3.4", "Sensitive data encryption configurations present (approximation)", "medium"),
            ("7.1", "Access control files have expected permissions (/etc/passwd, /etc/shadow)", "high"),
            ("10.2", "Logging configuration present (/etc/rsyslog.conf or /etc/syslog.conf)", "medium"),
            ("2.2.4", "Critical system file permissions restrictive (/etc/ssh/sshd_config)", "medium"),
        )
    ),
}
# Any scanner: an exception becomes "<scanner>:error" (ScannerRegistry::run_all_*)
ERROR_FORM = _f("scanner_error", r"(?P<scanner>[a-z_]+):error", "Scanner error", "error", (ANY1,))
# With --rules-enable a rule may override any severity and add this key to any finding.
RULE_KEYS = {"mitre_techniques": r"T\d{4}(\.\d{3})?(,T\d{4}(\.\d{3})?)*"}


def _template_regex(template: str, groups: dict, metadata: dict, literal: bool) -> str:
    """A template's `{name}` filled from the id's groups or the metadata; the rest literal (or, for titles
    and descriptions given as patterns, left as a pattern)."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        text = template[pos : m.start()]
        out.append(re.escape(text) if literal else text)
        value = groups.get(m.group(1), metadata.get(m.group(1)))
        out.append(re.escape(value) if value is not None else ".+")
        pos = m.end()
    tail = template[pos:]
    out.append(re.escape(tail) if literal else tail)
    return "".join(out)


def match_form(scanner: str, f: dict) -> Form | None:
    """The form of `scanner` whose id and title match finding `f`, else None."""
    forms = FORMS.get(scanner, ()) + (ERROR_FORM,)
    fid, title, meta = str(f.get("id", "")), str(f.get("title", "")), f.get("metadata") or {}
    for form in forms:
        m = re.fullmatch(form.id, fid)
        if not m:
            continue
        literal = not any(ch in form.title for ch in "\\|")
        if re.fullmatch(_template_regex(form.title, m.groupdict(), meta, literal), title):
            return form
    return None


def finding_defects(scanner: str, f: dict, rules: bool = False) -> list[str]:
    """Why finding `f` of `scanner` is not something 5.0.0 writes (empty when it is)."""
    if scanner not in SCANNERS:
        return [f"scanner '{scanner}' is not registered by 5.0.0"]
    form = match_form(scanner, f)
    if form is None:
        return [f"{scanner}: id/title form never emitted: id={f.get('id')!r} title={f.get('title')!r}"]
    out = []
    keys = set(f) - {"risk_score"}
    if keys != FINDING_KEYS:
        out.append(f"{scanner}/{form.name}: finding keys {sorted(keys ^ FINDING_KEYS)} differ from 5.0.0's")
    sev = f.get("severity")
    if sev not in form.severities and not rules:
        out.append(f"{scanner}/{form.name}: severity {sev!r} never given (source: {'/'.join(form.severities)})")
    expected_score = str(SEVERITY_SCORE[sev]) if sev in SEVERITY_SCORE else None  # the scanner writes a string
    if expected_score != f.get("base_severity_score"):
        out.append(
            f"{scanner}/{form.name}: base_severity_score {f.get('base_severity_score')!r} is not "
            f"{expected_score!r} for severity {sev!r}"
        )
    m = re.fullmatch(form.id, str(f.get("id")))
    meta = f.get("metadata") or {}
    if form is not ERROR_FORM and not any(
        re.fullmatch(_template_regex(d, m.groupdict(), meta, literal=d != ANY1), str(f.get("description", "")))
        for d in form.descriptions
    ):
        out.append(f"{scanner}/{form.name}: description form never emitted: {str(f.get('description'))[:80]!r}")
    allowed = dict(form.values, **(RULE_KEYS if rules else {}))
    for key, value in meta.items():
        if key not in allowed:
            out.append(f"{scanner}/{form.name}: metadata key '{key}' never written by 5.0.0")
        elif not isinstance(value, str) or not re.fullmatch(allowed[key], value):
            out.append(f"{scanner}/{form.name}: metadata '{key}' value form never written: {str(value)[:60]!r}")
    for key in form.required:
        if key not in meta:
            out.append(f"{scanner}/{form.name}: metadata '{key}' missing (always written by 5.0.0)")
    return out


def report_defects(report: dict) -> list[str]:
    """Every key, form and order in `report` that sys-scan 5.0.0 never writes."""
    out = []
    keys = set(report)
    if not keys >= TOP_KEYS or keys - TOP_KEYS - OPTIONAL_TOP_KEYS:
        out.append(f"top-level keys {sorted(keys ^ TOP_KEYS)} differ from 5.0.0's")
    meta = report.get("meta", {})
    extra = set(meta) - META_KEYS - OPTIONAL_META_KEYS
    if extra:
        out.append(f"meta keys never written: {sorted(extra)}")
    ec = meta.get("effective_config", {})
    extra = set(ec) - EFFECTIVE_CONFIG_KEYS - OPTIONAL_EFFECTIVE_CONFIG_KEYS
    if extra or not set(ec) >= EFFECTIVE_CONFIG_KEYS:
        out.append(f"effective_config keys differ: {sorted(set(ec) ^ EFFECTIVE_CONFIG_KEYS)}")
    if set(meta.get("provenance", {})) != PROVENANCE_KEYS:
        out.append(f"provenance keys differ: {sorted(set(meta.get('provenance', {})) ^ PROVENANCE_KEYS)}")
    if set(report.get("summary", {})) != SUMMARY_KEYS:
        out.append(f"summary keys differ: {sorted(set(report.get('summary', {})) ^ SUMMARY_KEYS)}")
    canonical = ec.get("canonical") == "true"
    rules = ec.get("rules_enable") == "true"
    for result in report.get("results", []):
        scanner = result.get("scanner")
        if set(result) != RESULT_KEYS:
            out.append(f"{scanner}: result keys {sorted(set(result) ^ RESULT_KEYS)} differ from 5.0.0's")
        ids = [str(f.get("id")) for f in result.get("findings", [])]
        if canonical and ids != sorted(ids):
            out.append(f"{scanner}: findings not sorted by id under --canonical")
        for f in result.get("findings", []):
            out += finding_defects(scanner, f, rules)
    for w in report.get("collection_warnings", []):
        if not any(
            re.fullmatch(s, str(w.get("scanner")))
            and code == w.get("code")
            and re.fullmatch(d, str(w.get("detail", "")))
            for s, code, d in WARNINGS
        ):
            out.append(f"collection warning form never written: {w}")
    return out
