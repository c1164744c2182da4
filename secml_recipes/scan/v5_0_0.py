"""sys-scan 5.0.0 (git a2ceff7): what each scanner reports about a `Host`, and how the writer lays it out.

Every rule here is transcribed from the scanner's C++ source at that commit (src/scanners/*.cpp,
src/core/{Report,JSONWriter,ScannerRegistry,ConfigValidator}.cpp), including its quirks, because the
model must learn the reports the scanner really writes:

- `Report::add_finding` drops findings whose scanner has no result entry: NetworkScanner files its
  findings under "tcp"/"tcp6"/"udp"/"udp6", so a 5.0.0 report never holds a network finding (and with the
  default `max_sockets = 0` it reads no socket line at all).
- SuidScanner walks /bin, /sbin, /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin but writes every
  root's hits from index 0 of one array, so later roots overwrite earlier ones; on merged-usr hosts the
  first /usr/bin entries (readdir order) are lost. The real fixture shows exactly this (13 of 16 /usr/bin
  binaries, see docs/scan-data.md).
- WorldWritableScanner lists only the top level of /usr/bin, /bin, /usr/local/bin, /etc, /var, at most
  5000 regular files in all; hidden names are skipped.
- ProcessScanner and IOCScanner read argv[0] only (C strings stop at the first NUL); a kernel thread's
  empty cmdline is a `proc_unreadable_cmdline` warning on every host, root or not.
- IntegrityScanner skips every `dpkg -V` line (they start with '?'), so dpkg hosts report 0 mismatches.
- The exec-trace scanner always runs (eBPF is not compiled into the release build): `ebpf:disabled`,
  one `proc.exec.detected` per process born during the 3 s /proc polling, then `proc.monitoring.complete`.
- Under `--canonical` each scanner's findings are sorted by id; keys are always sorted.

The scanner's pure-data tables (taint bits, expected SUID binaries, mount rules, hardening sysctls, lockdown,
unit recommendations) live in `generator/5_0_0.yaml`, apart from the spec's copy in `spec/`.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from secml_recipes.knowledge_files import INT, STR, frozen, load_table, mapping, record, seq
from secml_recipes.scan.host import SUID_ROOTS, Host

VERSION = "5.0.0"
GIT_COMMIT = "a2ceff7"
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4, "error": 5}
SEVERITY_SCORE = {"info": 10, "low": 30, "medium": 50, "high": 70, "critical": 90, "error": 80}
# The Debian/Ubuntu package build (the real fixture's provenance); RPM hosts run a source build.
DEB_PROVENANCE = {
    "build_type": "Release",
    "compiler_id": "GNU",
    "compiler_version": "13.3.0",
    "cxx_standard": "20",
    "cxx_flags": "-g -O2 -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -ffile-prefix-map=/home/joseph-mazzini/"
    "sys-scan-graph=. -flto=auto -ffat-lto-objects -fstack-protector-strong -fstack-clash-protection "
    "-Wformat -Werror=format-security -fcf-protection -fdebug-prefix-map=/home/joseph-mazzini/"
    "sys-scan-graph=/usr/src/sys-scan-graph-5.0.0-1 -O2 -pipe -Wdate-time -D_FORTIFY_SOURCE=3",
    "git_commit": GIT_COMMIT,
    "slsa_level": "0",
}
SOURCE_BUILD_COMPILER = {"fedora": "14.2.1", "rhel": "11.4.1"}
# The generator's own transcription of the scanner's tables (generator/5_0_0.yaml), apart from the spec's copy.
_G = load_table(
    __package__,
    "generator/5_0_0.yaml",
    record(
        {
            "taint_bits": seq(record({"bit": INT, "flag": STR})),
            "expected_suid": seq(STR),
            "mount_rules": mapping(record(dict.fromkeys(("sev", "title", "desc"), STR))),
            "hardening_sysctls": seq(
                record(dict.fromkeys(("path", "id", "title", "expect", "sev", "bad_desc", "good_desc"), STR))
            ),
            "lockdown": mapping(record(dict.fromkeys(("id", "title", "sev", "desc"), STR))),
            "unit_recommendations": seq(
                record(dict.fromkeys(("key", "expected", "sev", "bad_desc", "good_desc"), STR))
            ),
        }
    ),
)


# -- the effective configuration (ArgumentParser + ConfigValidator) -------------------------------------


@dataclass
class Config:
    canonical: bool = False
    ndjson: bool = False
    sarif: bool = False
    pretty: bool = False
    compact: bool = False
    rules_enable: bool = False
    rules_dir: str = ""
    integrity: bool = False
    integrity_pkg_verify: bool = False
    integrity_pkg_rehash: bool = False
    integrity_pkg_rehash_limit: int = 50
    integrity_pkg_limit: int = 200
    integrity_ima: bool = False
    modules_hash: bool = False
    modules_summary_only: bool = False
    modules_anomalies_only: bool = False
    fs_hygiene: bool = False
    fs_world_writable_limit: int = 0
    process_inventory: bool = False
    ioc_exec_trace: bool = False
    ioc_exec_trace_seconds: int = 0
    ioc_env_trust: bool = False
    parallel: bool = False
    parallel_max_threads: int = 0
    containers: bool = False
    hardening: bool = False
    seccomp: bool = False
    seccomp_strict: bool = False
    compliance: bool = False
    min_severity: str = ""
    fail_on_severity: str = ""
    fast_scan: bool = False
    all_processes: bool = False
    max_processes: int = 0
    max_sockets: int = 0
    disable: list = field(default_factory=list)
    enable: list = field(default_factory=list)

    @classmethod
    def from_flags(cls, flags: tuple[str, ...]) -> Config:
        """The Config ArgumentParser builds from `flags`, after ConfigValidator's normalisation."""
        cfg = cls()
        valued = {
            "--min-severity": "min_severity",
            "--fail-on": "fail_on_severity",
            "--rules-dir": "rules_dir",
            "--fs-world-writable-limit": "fs_world_writable_limit",
            "--max-processes": "max_processes",
            "--max-sockets": "max_sockets",
            "--parallel-threads": "parallel_max_threads",
            "--integrity-pkg-limit": "integrity_pkg_limit",
            "--integrity-pkg-rehash-limit": "integrity_pkg_rehash_limit",
        }
        switches = {
            "--canonical": "canonical",
            "--ndjson": "ndjson",
            "--sarif": "sarif",
            "--pretty": "pretty",
            "--compact": "compact",
            "--rules-enable": "rules_enable",
            "--integrity": "integrity",
            "--integrity-pkg-verify": "integrity_pkg_verify",
            "--integrity-pkg-rehash": "integrity_pkg_rehash",
            "--integrity-ima": "integrity_ima",
            "--modules-hash": "modules_hash",
            "--modules-summary": "modules_summary_only",
            "--modules-anomalies-only": "modules_anomalies_only",
            "--fs-hygiene": "fs_hygiene",
            "--process-inventory": "process_inventory",
            "--ioc-env-trust": "ioc_env_trust",
            "--parallel": "parallel",
            "--containers": "containers",
            "--hardening": "hardening",
            "--seccomp": "seccomp",
            "--seccomp-strict": "seccomp_strict",
            "--compliance": "compliance",
            "--fast-scan": "fast_scan",
            "--all-processes": "all_processes",
        }
        i = 0
        while i < len(flags):
            flag = flags[i]
            nxt = flags[i + 1] if i + 1 < len(flags) else None
            if flag in valued and nxt is not None:
                current = getattr(cfg, valued[flag])
                setattr(cfg, valued[flag], int(nxt) if isinstance(current, int) else nxt)
                i += 2
                continue
            if flag in ("--enable", "--disable") and nxt is not None:
                setattr(cfg, flag[2:], [s for s in nxt.split(",") if s])
                i += 2
                continue
            if flag == "--ioc-exec-trace":
                cfg.ioc_exec_trace = True
                if nxt is not None and not nxt.startswith("-"):
                    cfg.ioc_exec_trace_seconds = int(nxt)
                    i += 1
            elif flag in switches:
                setattr(cfg, switches[flag], True)
            i += 1
        if cfg.ioc_exec_trace and cfg.ioc_exec_trace_seconds == 0:
            cfg.ioc_exec_trace_seconds = 3
        if cfg.pretty and cfg.compact:
            cfg.pretty = False
        if cfg.fast_scan:  # "ebpf" is not the exec-trace scanner's name, so it keeps running
            cfg.disable += [n for n in ("modules", "integrity", "ebpf") if n not in cfg.enable]
            cfg.modules_summary_only = True
        return cfg

    def effective_config(self) -> dict:
        """meta.effective_config exactly as JSONWriter writes it (booleans as strings, numbers as numbers)."""
        b = lambda v: "true" if v else "false"  # noqa: E731
        out = {
            "canonical": b(self.canonical),
            "compact": b(self.compact),
            "compliance": b(self.compliance),
            "containers": b(self.containers),
            "fs_hygiene": b(self.fs_hygiene),
            "fs_world_writable_limit": self.fs_world_writable_limit,
            "hardening": b(self.hardening),
            "integrity": b(self.integrity),
            "integrity_pkg_rehash": b(self.integrity_pkg_rehash),
            "integrity_pkg_rehash_limit": self.integrity_pkg_rehash_limit,
            "integrity_pkg_verify": b(self.integrity_pkg_verify),
            "ioc_env_trust": b(self.ioc_env_trust),
            "ioc_exec_trace": b(self.ioc_exec_trace),
            "ioc_exec_trace_seconds": self.ioc_exec_trace_seconds,
            "modules_anomalies_only": b(self.modules_anomalies_only),
            "modules_hash": b(self.modules_hash),
            "modules_summary_only": b(self.modules_summary_only),
            "ndjson": b(self.ndjson),
            "parallel": b(self.parallel),
            "parallel_max_threads": self.parallel_max_threads,
            "pretty": b(self.pretty),
            "process_inventory": b(self.process_inventory),
            "rules_enable": b(self.rules_enable),
            "sarif": b(self.sarif),
            "seccomp": b(self.seccomp),
            "seccomp_strict": b(self.seccomp_strict),
        }
        if self.min_severity:
            out["min_severity"] = self.min_severity
        if self.fail_on_severity:
            out["fail_on_severity"] = self.fail_on_severity
        return dict(sorted(out.items()))


# -- the Report being built ------------------------------------------------------------------------------


class ScannerError(Exception):
    """What a scanner throws; the registry turns it into a `<scanner>:error` finding."""


@dataclass
class Run:
    cfg: Config
    host: Host
    rng: random.Random
    results: list = field(default_factory=list)  # [{"scanner", "findings", "start_ms", "end_ms"}]
    warnings: list = field(default_factory=list)  # [(scanner, code, detail)]
    compliance: dict = field(default_factory=dict)

    def add(self, scanner: str, f: dict) -> None:
        """Report::add_finding: dropped unless a result of that name exists; rules, then the min-severity
        filter, then base_severity_score from the severity."""
        result = next((r for r in self.results if r["scanner"] == scanner), None)
        if result is None:
            return
        if self.cfg.rules_enable:
            _apply_rules(self.host, scanner, f)
        if SEVERITY_RANK[f["severity"]] < SEVERITY_RANK.get(self.cfg.min_severity.lower(), 0):
            return
        f["base_severity_score"] = str(SEVERITY_SCORE[f["severity"]])
        result["findings"].append(f)

    def warn(self, scanner: str, code: str, detail: str = "") -> None:
        self.warnings.append((scanner, code, detail))


def finding(id_: str, title: str, severity: str, description: str, metadata: dict | None = None) -> dict:
    return {
        "id": id_,
        "title": title,
        "severity": severity,
        "description": description,
        "metadata": {k: str(v) for k, v in (metadata or {}).items()},
    }


def _apply_rules(host: Host, scanner: str, f: dict) -> None:
    for fld, contains, severity, mitre in host.rules_mitre:
        target = f["id"] if fld == "id" else f["title"] if fld == "title" else f["metadata"].get(fld)
        if target is not None and contains in target:
            f["severity"] = severity
            tokens = [t for t in f["metadata"].get("mitre_techniques", "").split(",") if t]
            f["metadata"]["mitre_techniques"] = ",".join(tokens + [mitre] if mitre not in tokens else tokens)


def _readable(host: Host, uid: int) -> bool:
    """/proc/<pid>/exe and /proc/<pid>/environ: root reads every process, a user only its own."""
    return host.as_root or uid == host.scan_uid


# -- scanners, in ScannerRegistry::register_all_default order --------------------------------------------


def scan_processes(run: Run) -> None:
    cfg, host = run.cfg, run.host
    containers = {pid: c["id"][:12] for c in host.containers for pid in c["pids"]} if cfg.containers else {}
    emitted = 0
    for p in host.procs[:5000]:
        cmd = p.argv0
        if not cmd:
            run.warn("processes", "proc_unreadable_cmdline", f"/proc/{p.pid}/cmdline")
        if not cmd and not cfg.all_processes:
            continue
        if not cfg.all_processes and cmd.startswith("[") and cmd.endswith("]"):
            continue
        if cfg.max_processes > 0 and emitted >= cfg.max_processes:
            break
        if cfg.process_inventory:
            meta = {"uid": p.uid, "gid": p.gid}
            if p.pid in containers:
                meta["container_id"] = containers[p.pid]
            run.add("processes", finding(str(p.pid), f"Process {p.pid}", "info", cmd or "(no cmdline)", meta))
            emitted += 1


def scan_network(run: Run) -> None:
    """Reads no socket line with the default max_sockets = 0, and files what it would read under
    tcp/tcp6/udp/udp6, which add_finding drops; only an unreadable /proc/net file leaves a trace."""
    for path in run.host.net_files_missing:
        run.warn(path.rsplit("/", 1)[-1], "net_file_unreadable", path)


KERNEL_PARAMS = (  # path, desired, description, severity on mismatch
    ("/proc/sys/kernel/randomize_va_space", "2", "ASLR should be full (2)", "medium"),
    ("/proc/sys/kernel/kptr_restrict", "1", "Kernel pointer addresses restricted", "low"),
    ("/proc/sys/net/ipv4/conf/all/rp_filter", "1", "Reverse path filtering", "low"),
    ("/proc/sys/net/ipv4/ip_forward", "0", "IP forwarding disabled unless a router", "info"),
)


def scan_kernel_params(run: Run) -> None:
    for path, desired, desc, bad in KERNEL_PARAMS:
        current = run.host.sysctl[path.removeprefix("/proc/sys/")]
        meta = {"current": current, "desired": desired}
        if current != desired:
            meta["status"] = "mismatch"
        run.add("kernel_params", finding(path, path, "info" if current == desired else bad, desc, meta))


def _strip_module_ext(name: str) -> str:
    for ext in (".ko", ".ko.xz", ".ko.gz"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


BIG_MODULES = {
    "amdgpu": "too_big",
    "nvidia": "too_big",
    "i915": "over_2mb",
    "xe": "over_2mb",
    "btrfs": "over_2mb",
    "xfs": "over_2mb",
}


def scan_modules(run: Run) -> None:
    cfg, host = run.cfg, run.host
    if not cfg.modules_summary_only and not cfg.modules_anomalies_only:
        for name in host.modules:
            run.add("modules", finding(name, f"Module {name}", "info", "Loaded kernel module"))
        return
    name_to_path = {_strip_module_ext(p.rsplit("/", 1)[-1]): p for p in host.module_paths.values() if p}
    counts = dict.fromkeys(
        ("total", "oot", "unsigned", "compressed", "compressed_scanned", "compressed_unsigned", "missing", "hidden"), 0
    )
    samples: dict[str, list] = {k: [] for k in ("sample", "oot", "unsigned", "compressed_unsigned", "hidden")}
    for name in host.modules:
        counts["total"] += 1
        if len(samples["sample"]) < 10:
            samples["sample"].append(name)
        path = name_to_path.get(name, "")
        oot = bool(path) and any(s in path for s in ("/extra/", "/updates/", "dkms", "nvidia", "virtualbox", "vmware"))
        if oot:
            counts["oot"] += 1
            samples["oot"] += [name][: 5 - len(samples["oot"])]
        unsigned = False
        if path.endswith(".ko"):
            unsigned = oot and host.lockdown.startswith("[none]")  # DKMS builds are MOK-signed only under SB
        elif path.endswith((".ko.xz", ".ko.gz")):
            counts["compressed"] += 1
            if BIG_MODULES.get(name) == "too_big":
                run.warn("modules", "decompress_fail", path)
            else:
                counts["compressed_scanned"] += 1
                if BIG_MODULES.get(name) == "over_2mb":  # the signature sits past the 2 MiB read bound
                    unsigned = True
                    counts["compressed_unsigned"] += 1
                    samples["compressed_unsigned"] += [name][: 5 - len(samples["compressed_unsigned"])]
        if unsigned:
            counts["unsigned"] += 1
            samples["unsigned"] += [name][: 5 - len(samples["unsigned"])]
        hidden = name in host.hidden_sysfs
        if hidden:
            counts["hidden"] += 1
            samples["hidden"] += [name][: 5 - len(samples["hidden"])]
        if cfg.modules_anomalies_only and (oot or unsigned or hidden):
            f = finding(name, f"Module anomaly: {name}", "medium", "Kernel module anomaly")
            if unsigned:
                f["metadata"]["unsigned"], f["severity"], f["description"] = (
                    "true",
                    "high",
                    "Unsigned kernel module detected",
                )
            if oot:
                f["metadata"]["out_of_tree"], f["severity"], f["description"] = (
                    "true",
                    "high",
                    "Out-of-tree kernel module",
                )
            if hidden:
                f["metadata"]["hidden_sysfs"], f["severity"], f["description"] = (
                    "true",
                    "high",
                    "Module present in /proc/modules but missing in /sys/module",
                )
            if path:
                f["metadata"]["path"] = path
            run.add("modules", f)
    if cfg.modules_anomalies_only:
        return
    sysfs_only = list(host.sysfs_only)
    severity = "info"
    if counts["oot"]:
        severity = "medium"
    if counts["unsigned"] or counts["hidden"] or sysfs_only:
        severity = "high"
    meta = {
        "total": counts["total"],
        "sample": ",".join(samples["sample"]),
        "out_of_tree_count": counts["oot"],
        "unsigned_count": counts["unsigned"],
    }
    if samples["oot"]:
        meta["out_of_tree_sample"] = ",".join(samples["oot"])
    for key in ("compressed_count", "compressed_scanned", "compressed_unsigned"):
        value = counts["compressed" if key == "compressed_count" else key]
        if value:
            meta[key] = value
    if samples["unsigned"]:
        meta["unsigned_sample"] = ",".join(samples["unsigned"])
    if samples["compressed_unsigned"]:
        meta["compressed_unsigned_sample"] = ",".join(samples["compressed_unsigned"])
    if counts["hidden"]:
        meta["hidden_proc_only_count"] = counts["hidden"]
        meta["hidden_proc_only_sample"] = ",".join(samples["hidden"])
    if sysfs_only:
        meta["sysfs_only_count"] = len(sysfs_only)
        meta["sysfs_only_sample"] = ",".join(sysfs_only[:5])
    meta["taint_value"] = str(host.tainted)
    flags = [name for bit, name in TAINT_BITS if host.tainted & (1 << bit)]
    if flags:
        meta["taint_flags"] = ",".join(flags)
    meta["kallsyms_readable"] = "yes"
    meta["kallsyms_sampled"] = "5000"
    if not host.as_root or host.sysctl.get("kernel/kptr_restrict") == "2":
        meta["kallsyms_all_zero"] = "true"
    run.add(
        "modules",
        finding("module_summary", "Kernel modules summary", severity, "Loaded kernel modules inventory", meta),
    )


TAINT_BITS: tuple[tuple[int, str], ...] = tuple((r["bit"], r["flag"]) for r in _G["taint_bits"])
INTERPRETERS = ("bash", "sh", "dash", "zsh", "ksh", "python", "python3", "perl", "ruby")
WW_SCAN_LIMIT = 5000


def scan_world_writable(run: Run) -> None:
    host, cfg = run.host, run.cfg
    total, ww_count = 0, 0
    for d in ("/usr/bin", "/bin", "/usr/local/bin", "/etc", "/var"):
        if total >= WW_SCAN_LIMIT:
            break
        listing = host.ww_dirs[d]
        seen = min(listing.count, WW_SCAN_LIMIT - total)
        total += seen
        for _, name, attrs in sorted((e for e in listing.notable if e[0] < seen), key=lambda e: e[0]):
            path = f"{d}/{name}"
            if attrs.get("ww") and (ww_count < cfg.fs_world_writable_limit or cfg.fs_world_writable_limit <= 0):
                sev = "low" if "/tmp/" in path else "high" if (".so" in path or "/bin/" in path) else "medium"
                run.add("world_writable", finding(path, "World-writable file", sev, "File is world writable"))
                ww_count += 1
            if attrs.get("suid") and (
                name in INTERPRETERS
                or (attrs.get("shebang", "").startswith("#") and any(i in attrs["shebang"] for i in INTERPRETERS))
            ):
                run.add(
                    "world_writable",
                    finding(
                        path,
                        "Setuid interpreter",
                        "critical",
                        "Setuid shell or script interpreter",
                        {"rule": "setuid_interpreter"},
                    ),
                )
            if attrs.get("caps") and not attrs.get("suid"):
                run.add(
                    "world_writable",
                    finding(
                        path,
                        "File capabilities binary",
                        "medium",
                        "Binary has file capabilities set",
                        {"rule": "file_capability"},
                    ),
                )


EXPECTED_SUID: tuple[str, ...] = frozen(_G["expected_suid"])
_EXPECTED_NAMES = {p.rsplit("/", 1)[1] for p in EXPECTED_SUID}


def suid_listing(host: Host) -> list[str]:
    """The paths SuidScanner reports, in index order: each root's hits are written from index 0 of the
    same array (the caller never offsets it), then deduplicated by inode over the summed count."""
    slots: list[tuple[str, int]] = []
    total = 0
    for root in SUID_ROOTS:
        entries = host.suid_dirs.get(root, [])[: 2000 - total]
        for i, entry in enumerate(entries):
            if i < len(slots):
                slots[i] = entry
            else:
                slots.append(entry)
        total += len(entries)
    seen, out = set(), []
    for path, inode in slots[:total]:
        if inode not in seen:
            seen.add(inode)
            out.append(path)
    return out


def scan_suid_sgid(run: Run) -> None:
    for path in suid_listing(run.host):
        sev = "high" if "/usr/local/" in path else "critical" if "/tmp/" in path else "medium"
        meta = {}
        if (path in EXPECTED_SUID or path.rsplit("/", 1)[1] in _EXPECTED_NAMES) and sev == "medium":
            meta, sev = {"expected": "true"}, "low"
        run.add("suid_sgid", finding(path, "SUID/SGID binary", sev, "Binary has SUID or SGID bit set", meta))


IOC_NAMES = ("kworker", "cryptominer", "xmrig", "minerd", "kthreadd", "malware", "bot")
IOC_DIRS = ("/tmp", "/dev/shm", "/var/tmp", "/home")


def scan_ioc(run: Run) -> None:
    host = run.host
    hits = 0
    for p in host.procs[:2000]:
        if not p.argv0 or hits >= 500:
            continue
        readable = _readable(host, p.uid) and bool(p.exe)
        exe = p.exe if readable else ""
        pattern = any(n in p.argv0 for n in IOC_NAMES) or any(d in p.argv0 for d in IOC_DIRS)
        deleted = "(deleted)" in exe
        ww_exe = any(exe.startswith(d) for d in IOC_DIRS)
        env = _readable(host, p.uid) and ("LD_PRELOAD=" in p.env_first or "LD_LIBRARY_PATH=" in p.env_first)
        if not (pattern or deleted or ww_exe or env):
            continue
        hits += 1
        key = (exe or p.argv0)[:255]
        if deleted:
            sev, desc = "critical", f"Process with deleted executable: {key}"
        elif ww_exe:
            sev, desc = "high", f"Process with world-writable executable: {key}"
        elif env:
            sev, desc = "medium", f"Process with suspicious environment: {key}"
        else:
            sev, desc = "low", f"Process with suspicious patterns: {key}"
        meta = {"pid": p.pid, "command": p.argv0[:127]}
        for flag, key_name in (
            (pattern, "pattern_match"),
            (deleted, "deleted_executable"),
            (ww_exe, "world_writable_executable"),
            (env, "environment_issue"),
        ):
            if flag:
                meta[key_name] = "true"
        run.add("ioc", finding(f"{key}:{p.pid}", "Process IOC Detected", sev, desc, meta))


CRITICAL_BINARIES = (
    "/usr/sbin/sshd",
    "/usr/bin/dbus-daemon",
    "/usr/sbin/nginx",
    "/usr/bin/containerd",
    "/usr/bin/dockerd",
)


def scan_mac(run: Run) -> None:
    host = run.host
    selinux = host.selinux
    apparmor_line = ("Y" if host.apparmor else "N") if host.distro.mac == "apparmor" else ""
    apparmor_enabled = bool(apparmor_line)  # any content counts, "N" included
    seen = complain = critical = 0
    if host.apparmor:
        for p in host.procs:
            if seen >= 1000:
                break
            if "(complain)" in p.label:
                complain += 1
            if "unconfined" in p.label and _readable(host, p.uid) and p.exe in CRITICAL_BINARIES:
                critical += 1
            seen += 1
    if selinux is None:
        sev = "low" if apparmor_enabled else "high"
        run.add("mac", finding("selinux", "SELinux status", sev, "SELinux detection", {"present": "false"}))
    else:
        meta = {
            "present": "true",
            "enforcing": "true" if selinux["enforce"] == "1" else "false",
            "permissive": "true" if selinux["enforce"] == "0" else "false",
        }
        if selinux.get("config_mode"):
            meta["config_mode"] = selinux["config_mode"]
        sev = "info" if selinux["enforce"] == "1" else "medium"
        run.add("mac", finding("selinux", "SELinux status", sev, "SELinux detection", meta))
    if not apparmor_enabled:
        run.add("mac", finding("apparmor", "AppArmor status", "high", "AppArmor detection", {"enabled": "false"}))
    else:
        meta = {"enabled": "true", "mode_line": apparmor_line, "profiles_seen": seen, "complain_count": complain}
        if critical:
            meta["unconfined_critical"] = critical
        run.add(
            "mac", finding("apparmor", "AppArmor status", "medium" if critical else "info", "AppArmor detection", meta)
        )
    if selinux is None and not apparmor_enabled:
        run.add("mac", finding("mac_none", "No MAC enforcement", "high", "Neither SELinux nor AppArmor appears active"))
    elif selinux is not None and apparmor_enabled:
        run.add(
            "mac",
            finding(
                "mac_dual",
                "Dual MAC layers",
                "info",
                "Both SELinux and AppArmor appear present (double-check for conflicts)",
            ),
        )


MOUNT_RULES: dict[str, tuple[str, str, str]] = {  # id suffix -> (severity, title, description)
    rule: (r["sev"], r["title"], r["desc"]) for rule, r in _G["mount_rules"].items()
}
_SKIP_FS = {"proc", "sysfs", "cgroup", "cgroup2", "debugfs", "devpts", "mqueue", "hugetlbfs", "tracefs"}
_SENSITIVE = {"/", "/home", "/tmp", "/var", "/var/tmp", "/boot", "/efi"}


def scan_mounts(run: Run) -> None:
    if not run.cfg.hardening:
        return
    for dev, mnt, fstype, opts in run.host.mounts:
        if fstype in _SKIP_FS:
            continue
        has = set(opts.split(",")).__contains__
        sensitive = mnt in _SENSITIVE or mnt.startswith("/home/")
        tmp_like = mnt in ("/tmp", "/var/tmp")
        rules = []
        if tmp_like:
            rules += [
                r
                for r, opt in (
                    ("tmp-noexec-missing", "noexec"),
                    ("tmp-nosuid-missing", "nosuid"),
                    ("tmp-nodev-missing", "nodev"),
                )
                if not has(opt)
            ]
        if sensitive and mnt != "/" and fstype in ("ext4", "xfs", "btrfs"):
            if not has("nosuid"):
                rules.append("sensitive-nosuid-missing")
            if not has("nodev") and mnt not in ("/boot", "/efi"):
                rules.append("sensitive-nodev-missing")
        if mnt.startswith("/home") and has("exec"):
            rules.append("home-exec")
        if has("bind") and not tmp_like and not sensitive:
            rules.append("bind-generic")
        for rule in rules:
            sev, title, desc = MOUNT_RULES[rule]
            run.add(
                "mounts",
                finding(
                    f"mount:{rule}:{mnt}",
                    title,
                    sev,
                    desc,
                    {"mount": mnt, "device": dev, "fstype": fstype, "options": opts},
                ),
            )


# path, id (without "sysctl:"), title, expected, severity, bad description, good description
HARDENING_SYSCTLS: tuple[tuple[str, ...], ...] = tuple(
    (c["path"], c["id"].removeprefix("sysctl:"), c["title"], c["expect"], c["sev"], c["bad_desc"], c["good_desc"])
    for c in _G["hardening_sysctls"]
)
LOCKDOWN: dict[str, tuple[str, str, str, str]] = {  # mode -> (id, title, severity, description)
    mode: (r["id"], r["title"], r["sev"], r["desc"]) for mode, r in _G["lockdown"].items()
}


def scan_kernel_hardening(run: Run) -> None:
    if not run.cfg.hardening:
        return
    host = run.host
    if host.lockdown:
        active = host.lockdown[host.lockdown.find("[") + 1 : host.lockdown.find("]")] if "[" in host.lockdown else ""
        id_, title, sev, desc = LOCKDOWN[active or "none"]
        run.add("kernel_hardening", finding(id_, title, sev, desc, {"raw": host.lockdown}))
    if host.efi:
        run.add(
            "kernel_hardening",
            finding(
                "kernel:secureboot:efi",
                "EFI firmware detected",
                "info",
                "System booted with EFI (secure boot state heuristic)",
                {"efi": "present"},
            ),
        )
        # access("/sys/firmware/efi/efivars/dbx*") tests a literal '*': never true
        run.add(
            "kernel_hardening",
            finding(
                "kernel:secureboot:dbx-missing",
                "EFI dbx revocation list not detected",
                "low",
                "Could not locate dbx revocation entries (heuristic)",
            ),
        )
    if host.ima_policy:
        appraise = "appraise" in host.ima_policy
        desc = "IMA policy includes appraisal" if appraise else "IMA policy lacks explicit appraisal"
        run.add(
            "kernel_hardening",
            finding("kernel:ima:policy", "IMA policy present", "info", desc, {"appraise": "yes" if appraise else "no"}),
        )
    if host.tpm:
        run.add(
            "kernel_hardening",
            finding("kernel:tpm:present", "TPM device present", "info", "Trusted Platform Module detected"),
        )
    else:
        run.add(
            "kernel_hardening",
            finding("kernel:tpm:absent", "No TPM device", "low", "TPM not detected (may reduce attestation options)"),
        )
    for path, id_, title, expect, sev, bad, good in HARDENING_SYSCTLS:
        value = host.sysctl[path.removeprefix("/proc/sys/")]
        ok = value == expect
        run.add(
            "kernel_hardening",
            finding(
                f"kernel:sysctl:{id_}",
                title,
                "info" if ok else sev,
                good if ok else bad,
                {"path": path, "value": value, "expected": expect},
            ),
        )


# key, expected ("" = presence only), severity, bad description, good description
UNIT_RECOMMENDATIONS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (r["key"], r["expected"], r["sev"], r["bad_desc"], r["good_desc"]) for r in _G["unit_recommendations"]
)


def scan_systemd_units(run: Run) -> None:
    if not run.cfg.hardening:
        return
    units = []
    for d in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"):
        for name, keys in run.host.units.get(d, [])[:500]:
            if len(units) < 1000:
                units.append((name, keys))
    for name, keys in units:
        for key, expect, sev, bad, good in UNIT_RECOMMENDATIONS:
            value = keys.get(key)
            meta = {"unit": name, "key": key, "expected": expect}
            if value is not None:
                meta["value"] = value
            ok = value is not None and (expect == "" or value == expect)
            desc = good if ok else (bad if value is not None else f"{bad} (missing)")
            run.add(
                "systemd_units", finding(f"systemd:{key}:{name}", f"{name} {key}", "info" if ok else sev, desc, meta)
            )


AUDIT_PATTERNS = (  # id, regex (icase), title, description
    ("execve", r"-S\s+execve", "Audit execve present", "Execve syscall auditing present"),
    ("setuid", r"-S\s+setuid", "Audit setuid present", "setuid syscall auditing present"),
    ("setgid", r"-S\s+setgid", "Audit setgid present", "setgid syscall auditing present"),
    ("chmod", r"-S\s+chmod", "Audit chmod present", "chmod syscall auditing present"),
    ("chown", r"-S\s+chown", "Audit chown present", "chown syscall auditing present"),
    ("capset", r"-S\s+capset", "Audit capset present", "capset syscall auditing present"),
    (
        "insmod",
        r"-k\s*modules|/s?bin/(insmod|modprobe)",
        "Module load auditing",
        "Module load operations likely audited",
    ),
)


def scan_auditd(run: Run) -> None:
    if not run.cfg.hardening:
        return
    host = run.host
    if host.audit_installed and not host.as_root:  # /etc/audit is 0750: std::filesystem::exists throws
        raise ScannerError("filesystem error: status: Permission denied [/etc/audit/audit.rules]")
    if not host.audit_installed or not host.audit_rules:
        run.add(
            "auditd",
            finding("auditd:rules:missing", "No auditd rules detected", "medium", "Could not read auditd rules files"),
        )
        return
    matched = {id_ for id_, rx, _, _ in AUDIT_PATTERNS if re.search(rx, host.audit_rules, re.IGNORECASE)}
    for id_, _, title, desc in AUDIT_PATTERNS:
        ok = id_ in matched
        run.add(
            "auditd", finding(f"auditd:{id_}", title, "info" if ok else "medium", desc if ok else f"{title} missing")
        )
    if "execve" not in matched:
        run.add(
            "auditd",
            finding(
                "auditd:execve:absent",
                "Execve auditing missing",
                "high",
                "Audit rules lack -S execve; process execution coverage incomplete",
            ),
        )


def scan_containers(run: Run) -> None:
    if not run.cfg.containers:
        return
    if not run.host.containers:
        run.add(
            "containers",
            finding("container:none", "No containers detected", "info", "No container cgroup signatures found"),
        )
        return
    for c in run.host.containers:
        short = c["id"][:12]
        run.add(
            "containers",
            finding(
                f"container:{short}",
                f"Container detected {short}",
                "info",
                "Container runtime context",
                {"runtime": c["runtime"], "pid": min(c["pids"]), "cgroup": c["cgroup"]},
            ),
        )


def scan_integrity(run: Run) -> None:
    cfg, host = run.cfg, run.host
    if not cfg.integrity:
        return
    mismatches, sample = 0, []
    tool = None
    if cfg.integrity_pkg_verify:
        tool = host.distro.pkg_tool
        for line in host.pkg_verify_lines if tool == "rpm" else ():
            if not any(c not in ". " for c in line[:8]):
                continue
            mismatches += 1
            if len(sample) < 10:
                sample.append(line[:40])
            path = line[9:] if len(line) > 9 else ""
            if mismatches <= cfg.integrity_pkg_limit:
                meta = {"raw": line}
                if path:
                    meta["path"] = path
                run.add(
                    "integrity",
                    finding(
                        f"pkg_mismatch:{mismatches - 1}",
                        "Package file mismatch",
                        "medium",
                        "rpm verification mismatch",
                        meta,
                    ),
                )
    meta = {}
    if tool:
        meta["pkg_tool"] = tool
    meta["pkg_mismatch_count"] = mismatches
    if sample:
        meta["pkg_mismatch_sample"] = ",".join(sample)
    if cfg.integrity_ima:
        meta["ima_entries"] = 0 if not host.as_root else run.rng.randint(800, 4000)
    run.add(
        "integrity",
        finding(
            "integrity_summary",
            "Integrity summary",
            "medium" if mismatches else "info",
            "Package / integrity verification",
            meta,
        ),
    )


def scan_yara(run: Run) -> None:
    host = run.host
    patterns = getattr(host, "yara_patterns", [])
    if not patterns:
        return
    budget = 2001  # `if(scanned++ > file_limit) return;` with file_limit 2000
    usr_bin = host.ww_dirs["/usr/bin"].count
    for path, content in host.yara_files:
        position = usr_bin * 2 + 1 if path.startswith("/usr/local/") else 0
        if position >= budget:
            continue
        for pat in patterns:
            if pat in content:
                run.add(
                    "yara",
                    finding(
                        f"{path}:yara:{pat[:16]}",
                        "Pseudo-YARA pattern match",
                        "medium",
                        "Pattern found in file prefix",
                        {"pattern": pat, "path": path},
                    ),
                )


def scan_ebpf_exec_trace(run: Run) -> None:
    duration = run.cfg.ioc_exec_trace_seconds or 3
    run.add(
        "ebpf_exec_trace",
        finding(
            "ebpf:disabled",
            "eBPF support not available at runtime",
            "info",
            "eBPF tools not installed, incompatible kernel, or missing capabilities. "
            "Using alternative detection methods.",
            {"alternative_detection": "true", "source": "ebpf_fallback", "detection_method": "runtime_check"},
        ),
    )
    for pid, comm, ppid in run.host.short_lived:
        run.add(
            "ebpf_exec_trace",
            finding(
                "proc.exec.detected",
                f"Process execution detected: {comm} (PID: {pid})",
                "info",
                "New process execution detected via /proc monitoring",
                {"pid": pid, "comm": comm, "ppid": ppid, "source": "proc_fallback", "detection_method": "proc_polling"},
            ),
        )
    run.add(
        "ebpf_exec_trace",
        finding(
            "proc.monitoring.complete",
            "Process monitoring completed via /proc filesystem",
            "info",
            "Alternative process monitoring completed using /proc polling method",
            {"duration_seconds": duration, "source": "proc_fallback", "method": "filesystem_polling"},
        ),
    )


# Stays in Python: each control's test is a function of the host.
PCI_CONTROLS = (  # control id, requirement, severity, test
    ("3.4", "Sensitive data encryption configurations present (approximation)", "medium", lambda h: True),
    ("7.1", "Access control files have expected permissions (/etc/passwd, /etc/shadow)", "high", lambda h: True),
    (
        "10.2",
        "Logging configuration present (/etc/rsyslog.conf or /etc/syslog.conf)",
        "medium",
        lambda h: h.distro.os_id in ("ubuntu", "rhel"),
    ),
    (
        "2.2.4",
        "Critical system file permissions restrictive (/etc/ssh/sshd_config)",
        "medium",
        lambda h: h.role not in ("laptop",) or h.distro.os_id == "fedora",
    ),
)


def scan_pci_compliance(run: Run) -> None:
    """Adds a second "pci_compliance" result (Report::add_result) beside the empty one the registry
    started; the findings keep the control's severity whether it passed or not."""
    findings, passed = [], 0
    for control, requirement, severity, test in PCI_CONTROLS:
        ok = test(run.host)
        passed += ok
        f = finding(
            f"pci_dss_4_0:{control}",
            f"pci_dss_4_0 control {control}",
            severity,
            requirement,
            {
                "standard": "pci_dss_4_0",
                "control_id": control,
                "requirement": requirement,
                "passed": "true" if ok else "false",
            },
        )
        f["base_severity_score"] = str(SEVERITY_SCORE[severity])
        findings.append(f)
    now = run.results[-1]["start_ms"]
    run.results.append({"scanner": "pci_compliance", "findings": findings, "start_ms": now, "end_ms": now})
    failed = len(PCI_CONTROLS) - passed
    run.compliance = {
        "pci_dss_4_0": {
            "failed": failed,
            "not_applicable": 0,
            "passed": passed,
            "score": float(f"{passed / max(1, passed + failed):.6f}"),
            "total_controls": len(PCI_CONTROLS),
        }
    }


# Stays in Python: it names the scanner functions.
SCANNERS = (  # (name, function, elapsed ms (lo, hi)); order = register_all_default
    ("processes", scan_processes, (1, 6)),
    ("network", scan_network, (0, 1)),
    ("kernel_params", scan_kernel_params, (0, 0)),
    ("modules", scan_modules, (0, 1)),
    ("world_writable", scan_world_writable, (6, 14)),
    ("suid_sgid", scan_suid_sgid, (5, 12)),
    ("ioc", scan_ioc, (1, 4)),
    ("mac", scan_mac, (1, 2)),
    ("mounts", scan_mounts, (0, 0)),
    ("kernel_hardening", scan_kernel_hardening, (0, 0)),
    ("systemd_units", scan_systemd_units, (0, 0)),
    ("auditd", scan_auditd, (0, 0)),
    ("containers", scan_containers, (0, 1)),
    ("integrity", scan_integrity, (0, 0)),
    ("yara", scan_yara, (20, 90)),
    ("ebpf_exec_trace", scan_ebpf_exec_trace, (3005, 3030)),
    ("pci_compliance", scan_pci_compliance, (0, 0)),
)
SLOW_WHEN = {
    ("systemd_units", "hardening"): (8, 25),
    ("integrity", "integrity_pkg_verify"): (9000, 95000),
    ("modules", "modules_summary_only"): (25, 60),
    ("processes", "process_inventory"): (3, 12),
}


def registered(cfg: Config) -> list[str]:
    names = [n for n, _, _ in SCANNERS if n not in ("integrity", "yara", "pci_compliance")]
    names = names[:13] + (["integrity"] if cfg.integrity else []) + (["yara"] if cfg.rules_enable else []) + names[13:]
    return names + (["pci_compliance"] if cfg.compliance else [])


def _enabled(cfg: Config, name: str) -> bool:
    if cfg.enable and name not in cfg.enable:
        return False
    return name not in cfg.disable


# -- the writer ----------------------------------------------------------------------------------------


def _iso(ms: int, epoch: datetime) -> str:
    return (epoch + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fps(n: int, duration_ms: int) -> float:
    """findings_per_second: printed with 2 decimals, trailing zeros trimmed down to one."""
    if duration_ms <= 0:
        return 0.0
    return float(f"{n * 1000.0 / duration_ms:.2f}")


def scan(host: Host, started: datetime) -> Run:
    """Run every registered, enabled scanner against `host` in registry order (or all at once under
    --parallel), timing each on a millisecond clock that starts at `started`."""
    cfg = Config.from_flags(host.options.flags)
    rng = random.Random(f"{host.plan.seed}:scan")
    run = Run(cfg=cfg, host=host, rng=rng)
    functions = {n: (fn, span) for n, fn, span in SCANNERS}
    clock = rng.randint(0, 999)
    for name in registered(cfg):
        if not _enabled(cfg, name):
            continue
        fn, span = functions[name]
        for (scanner, flag), slow in SLOW_WHEN.items():
            if scanner == name and getattr(cfg, flag):
                span = slow
        elapsed = rng.randint(*span)
        if name == "ebpf_exec_trace":
            elapsed += (cfg.ioc_exec_trace_seconds or 3) * 1000 - 3000
        start = clock if not cfg.parallel else rng.randint(0, 2)
        run.results.append({"scanner": name, "findings": [], "start_ms": start, "end_ms": start + elapsed})
        try:
            fn(run)
        except ScannerError as err:
            run.add(name, finding(f"{name}:error", "Scanner error", "error", str(err)))
        if not cfg.parallel:
            clock = start + elapsed
    return run


def report_from_run(run: Run, started: datetime, scan_order: bool = False) -> dict:
    """The JSON report (JSONWriter::write without --ndjson/--sarif), as a dict. `scan_order` keeps each
    scanner's findings in the order they were found, as the --ndjson branch prints them."""
    cfg, host = run.cfg, run.host
    results, severity_counts, total_risk, n_total = [], {}, 0, 0
    earliest = min((r["start_ms"] for r in run.results), default=0)
    latest = max((r["end_ms"] for r in run.results), default=0)
    slowest_name, slowest_ms = "", 0
    for r in run.results:
        elapsed = r["end_ms"] - r["start_ms"]
        if elapsed > slowest_ms:
            slowest_name, slowest_ms = r["scanner"], elapsed
        findings = r["findings"]
        if cfg.canonical and not scan_order:
            findings = sorted(findings, key=lambda f: f["id"])
        for f in findings:
            severity_counts[f["severity"]] = severity_counts.get(f["severity"], 0) + 1
            total_risk += int(f["base_severity_score"])
        n_total += len(findings)
        results.append(
            {
                "elapsed_ms": elapsed,
                "end_time": _iso(r["end_ms"], started),
                "finding_count": len(findings),
                "findings": [dict(sorted(f.items()), metadata=dict(sorted(f["metadata"].items()))) for f in findings],
                "scanner": r["scanner"],
                "start_time": _iso(r["start_ms"], started),
            }
        )
    duration = latest - earliest
    counts = dict(sorted(severity_counts.items()))
    uid = str(host.scan_uid)
    meta = {
        "$schema": "https://github.com/J-mazz/sys-scan/schema/v2.json",
        "arch": "x86_64",
        "cmdline": host.options.cmdline(),
        "effective_config": cfg.effective_config(),
        "egid": uid,
        "euid": uid,
        "gid": uid,
        "hostname": host.plan.hostname,
        "json_schema_version": "2",
        "kernel": host.kernel,
        "os_id": host.distro.os_id,
        "os_pretty": host.os_pretty,
        "os_version": host.distro.os_version,
        "provenance": provenance(host),
        "tool_version": VERSION,
        "uid": uid,
        "user": "root" if host.as_root else host.user,
    }
    report = {
        "collection_warnings": [
            dict({"code": code, "scanner": scanner}, **({"detail": detail} if detail else {}))
            for scanner, code, detail in run.warnings
        ],
        "meta": dict(sorted(meta.items())),
        "results": results,
        "scanner_errors": [],
        "summary": {
            "duration_ms": duration,
            "finding_count_emitted": n_total,
            "finding_count_total": n_total,
            "findings_per_second": _fps(n_total, duration),
            "finished_at": _iso(latest, started),
            "scanner_count": str(len(run.results)),
            "scanners_with_findings": sum(1 for r in run.results if r["findings"]),
            "severity_counts": counts,
            "severity_counts_emitted": dict(counts),
            "slowest_scanner": {"elapsed_ms": str(slowest_ms), "name": slowest_name},
            "started_at": _iso(earliest, started),
        },
        "summary_extension": {"emitted_risk_score": total_risk, "total_risk_score": total_risk},
    }
    report["collection_warnings"] = [dict(sorted(w.items())) for w in report["collection_warnings"]]
    if run.compliance:
        report["compliance_summary"] = run.compliance
    return dict(sorted(report.items()))


def provenance(host: Host) -> dict:
    if host.distro.pkg_tool == "dpkg":
        return dict(DEB_PROVENANCE)
    return dict(DEB_PROVENANCE, compiler_version=SOURCE_BUILD_COMPILER.get(host.distro.os_id, "13.3.0"), cxx_flags="")


def generate(host: Host, started: datetime | None = None, scan_order: bool = False) -> dict:
    """The report sys-scan 5.0.0 writes for `host` (findings in scan order with `scan_order`)."""
    if started is None:
        rng = random.Random(f"{host.plan.seed}:clock")
        started = datetime(2025, 9, 15, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 180 * 86400))
    run = scan(host, started)
    return report_from_run(run, started, scan_order)


def host_digest(host: Host) -> str:
    return hashlib.sha256(f"{host.plan.host_id}:{host.plan.seed}".encode()).hexdigest()[:12]
