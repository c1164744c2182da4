"""The analyst's tools and the simulated host that answers them.

`ScanEnvironment` is a deterministic simulation of the scanned machine, built from the scan alone (never
from the machine running this code): a package database and file metadata shaped like the host's
distribution (`knowledge.packages`: real package names, versions, origins and owned paths), file hashes
that match the package build unless the evidence says the file was replaced, a hash-reputation catalogue
(package builds, vendor releases, known malware), a process table, and a baseline of earlier scans. The
world it simulates is the one the scan's evidence implies: a program the evidence marks as malicious
hashes to a known-bad sample, a user-installed application to its vendor's release.

The tools are typed methods; their JSON schemas come from `transformers.utils.get_json_schema`, so the
schemas the model sees are generated from the same signatures and docstrings that run. Training
episodes and the evaluation's rollouts use this same class.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import jsonschema
from transformers.utils import get_json_schema

from secml_recipes.tasks.behaviours import planted_sample
from secml_recipes.teacher.assess import Host, assess_finding, integrity_path, ioc_exe_and_pid, ioc_signals, md
from secml_recipes.teacher.knowledge import attack
from secml_recipes.teacher.knowledge.debian_files import script_source
from secml_recipes.teacher.knowledge.ioc import SCRATCH_ROOTS, script_path
from secml_recipes.teacher.knowledge.packages import Package, is_vendor, origin_text, owning_package, package_paths
from secml_recipes.teacher.knowledge.privileged import stock_capability, stock_privileged, third_party

Severity = Literal["info", "low", "medium", "high", "critical", "error"]


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def _fraction(*parts: object) -> float:
    return int(_digest(*parts)[:8], 16) / 0xFFFFFFFF


@dataclass
class FileFacts:
    path: str
    owner: str = "root"
    group: str = "root"
    mode: str = "0755"
    size: int = 0
    modified: datetime | None = None
    package: Package | None = None
    replaced: bool = False  # differs from its package (or from the vendor's release)
    reputation: tuple[str, str] = ("unknown", "")  # verdict, name
    capabilities: str | None = None
    deleted: bool = False


@dataclass
class ProcessFacts:
    pid: int
    exe: str
    cmdline: str
    user: str
    uid: str
    ppid: int
    parent: str
    started: datetime
    sockets: list[str] = field(default_factory=list)
    exe_deleted: bool = False
    environment: dict[str, str] = field(default_factory=dict)  # loader variables (LD_PRELOAD, ...)
    origin: dict[str, str] = field(default_factory=dict)  # what launched it: a unit, a cron entry, a profile


MALWARE_FAMILIES = [  # signals in the evidence -> the family a threat-intel lookup names
    (("xmrig", "minerd", "cryptominer", "stratum", "donate-level", "pool."), "Linux.CoinMiner.XMRig"),
    (("/dev/tcp", "reverse", "9001"), "Linux.Backdoor.ReverseShell"),
    (("sshd", "-p 2222"), "Linux.Backdoor.TrojanizedSSHD"),
    (("beacon", "sliver", "update"), "Linux.Trojan.Sliver"),
    (("processhider", "libprocesshider"), "Linux.Rootkit.ProcessHider"),
]


def _family(text: str) -> str:
    for needles, name in MALWARE_FAMILIES:
        if any(n in text for n in needles):
            return name
    return "Linux.Trojan.Generic"


class ScanEnvironment:
    """Answers tool calls about one scanned host, deterministically, from the scan alone."""

    def __init__(self, report: dict):
        self.report = report
        self.host = Host.from_report(report)
        self.hostname = self.host.hostname
        meta, summary = report.get("meta", {}), report.get("summary", {})
        self.user = str(meta.get("user") or "user")
        started = str(summary.get("started_at") or "2025-09-01T00:00:00Z")
        self.scanned = datetime.fromisoformat(started.replace("Z", "+00:00"))
        self.installed = self.scanned - timedelta(days=200 + int(_fraction(self.hostname, "install") * 700))
        self.findings = [(r.get("scanner", ""), f) for r in report.get("results", []) for f in r.get("findings", [])]
        self.assessments = {(s, f["id"]): assess_finding(s, f, self.host) for s, f in self.findings}
        self.files: dict[str, FileFacts] = {}
        self.processes: dict[int, ProcessFacts] = {}
        self.reputation: dict[str, tuple[str, str, str]] = {}  # sha256 -> verdict, name, source
        self.remotes: dict[str, str] = {}  # host:port -> what threat intelligence says of it
        self._build()

    # -- the simulated world -----------------------------------------------------------------------
    def _days_ago(self, key: str, low: int, high: int) -> datetime:
        return self.scanned - timedelta(
            days=low + int(_fraction(self.hostname, key) * (high - low)), minutes=int(_fraction(key, "min") * 1440)
        )

    def _file(self, path: str) -> FileFacts:
        if path not in self.files:
            pkg = owning_package(path, self.host.family)
            facts = FileFacts(path, package=pkg, size=20_000 + int(_fraction(path, "size") * 2_000_000))
            facts.modified = self.installed if pkg and not is_vendor(pkg) else self._days_ago(path, 20, 180)
            stock = stock_privileged(path, self.host.family)
            vendor = third_party(path)
            cap = stock_capability(path, self.host.family)
            if stock:
                facts.mode = {"suid": "4755", "sgid": "2755", "suid+sgid": "6755"}[stock.bit]
                facts.group = stock.owner if stock.bit == "sgid" else "root"
                facts.owner = stock.owner if stock.bit != "sgid" else "root"
                if path.endswith("/pppd") or path.endswith("dbus-daemon-launch-helper"):
                    facts.mode, facts.group = "4754", "dip" if path.endswith("/pppd") else "messagebus"
            elif vendor:
                facts.mode = "4755" if vendor.bit == "suid" else "2755"
                facts.group = "root" if vendor.bit == "suid" else vendor.owner
            if cap:
                facts.capabilities = cap.capabilities
            if pkg:
                build = "vendor" if is_vendor(pkg) else "distribution"
                facts.reputation = ("known_good", f"{pkg.name} {pkg.version} ({build} build)")
            self.files[path] = facts
        return self.files[path]

    def _known(self, path: str) -> FileFacts | None:
        """File facts for a path the scan mentions or a package owns; None for a path this host does not have."""
        if path in self.files:
            return self.files[path]
        return self._file(path) if owning_package(path, self.host.family) else None

    def _sha256(self, facts: FileFacts) -> str:
        if facts.package and not facts.replaced:
            return _digest("pkg", facts.package.name, facts.package.version, facts.path)
        if facts.reputation[0] == "known_good" and not facts.replaced:
            return _digest("release", facts.reputation[1], facts.path.rsplit("/", 1)[-1])
        return _digest("host", self.hostname, facts.path)

    def _build(self) -> None:
        by_scanner: dict[str, list[dict]] = {}
        for scanner, f in self.findings:
            by_scanner.setdefault(scanner, []).append(f)
        for f in by_scanner.get("suid_sgid", []):
            facts = self._file(f["id"])
            if not stock_privileged(f["id"], self.host.family) and not third_party(f["id"]):
                facts.mode = "4755"
                facts.modified = self._days_ago(f["id"], 1, 40)
                if f["id"].startswith(SCRATCH_ROOTS + ("/home/",)):
                    facts.reputation = ("malicious", "Linux.Backdoor.SuidShell")
        for f in by_scanner.get("world_writable", []):
            facts = self._file(f["id"])
            if not md(f, "rule"):
                setid = facts.mode[0] if len(facts.mode) == 4 and facts.mode[0] in "246" else "0"  # kept: chmod 4777
                facts.mode = setid + ("777" if "/bin/" in f["id"] else "666")
                facts.size = 40 + int(_fraction(f["id"], "size") * 4000)
                facts.modified = self._days_ago(f["id"], 2, 60)
        for f in by_scanner.get("integrity", []):
            path = integrity_path(f)
            if f["id"].startswith("pkg_mismatch:") and {"S", "5"} & set(md(f, "raw")[:9]):  # content differs
                facts = self._file(path)
                facts.replaced = True
                facts.modified = self._days_ago(path, 1, 30)
                if "binary_modified" in self.assessments[("integrity", f["id"])].tags:
                    facts.reputation = ("malicious", _family(path))
        for f in by_scanner.get("yara", []):
            path = md(f, "path") or f["id"].split(":yara:")[0]
            facts = self._file(path)
            facts.reputation = ("malicious", _family(md(f, "pattern").lower() + " " + path))
            facts.modified = self._days_ago(path, 1, 20)
        compromised = any(a.verdict == "contain" for a in self.assessments.values())
        for f in by_scanner.get("ioc", []):
            self._ioc_process(f)
        self._tamper_a_setid_binary(compromised, by_scanner)
        for scanner in ("processes", "network", "ebpf_exec_trace"):
            for f in by_scanner.get(scanner, []):
                self._other_process(scanner, f)
        for proc in self.processes.values():
            proc.origin = proc.origin or self._origin(proc)
        self.on_disk = sorted(self.files)  # what the scan and its processes put there, for list_files_changed_near
        for facts in self.files.values():
            verdict, name = facts.reputation
            if verdict != "unknown":
                source = (
                    "threat intelligence feed"
                    if verdict == "malicious"
                    else ("package repository metadata" if facts.package else "vendor release checksums")
                )
                self.reputation[self._sha256(facts)] = (verdict, name, source)

    def _ioc_process(self, f: dict) -> None:
        """The process an IOC finding saw, and the file it is about (the script an interpreter runs, the
        library in LD_PRELOAD, else the executable), as the evidence implies they are."""
        s = ioc_signals(f, self.host.family)
        pid = int(s["pid"] or 0)
        if not pid:
            return
        sample = planted_sample(s["exe"], s["command"])
        if sample is not None:
            self._planted_process(pid, sample)
            return
        a = self.assessments[("ioc", f["id"])]
        malicious = a.verdict == "contain" or bool(s["injection"]) or bool(s["hidden"] and s["home"])
        owner = (
            s["exe"].split("/")[2]
            if s["exe"].startswith("/home/")
            else ("www-data" if malicious and "web" in self.hostname else self.user if s["home"] else "root")
        )
        environment = {}
        if s["env"]:
            compromised = any(x.verdict == "contain" for x in self.assessments.values())
            value = "/usr/lib/x86_64-linux-gnu/libprocesshider.so" if compromised else "/opt/vendor/lib"
            environment["LD_PRELOAD" if compromised else "LD_LIBRARY_PATH"] = value
            malicious = malicious or compromised
        subject = ioc_subject(s["exe"], s["command"], environment)
        facts = self._file(subject)
        if not facts.package:
            facts.owner = facts.group = owner
            facts.mode = "0755" if subject == s["exe"] else "0644"
        if subject != s["exe"] and not facts.package:
            facts.size = 300 + int(_fraction(subject, "size") * 60000)
        if s["app"] and not malicious:
            facts.reputation = ("known_good", f"{s['app'].name} ({s['app'].vendor} release)")
            facts.modified = self._days_ago(subject, 10, 120)
        elif malicious and not facts.package:
            facts.reputation = ("malicious", _family((s["command"] + " " + subject).lower()))
            facts.modified = self._days_ago(subject, 0, 1)
        elif not facts.package:
            facts.modified = self._days_ago(subject, 3, 90)
        facts.deleted = s["deleted"] and not facts.package
        upgraded = s["deleted"] and facts.package is not None  # the package replaced the file under it
        if upgraded:
            facts.modified = self._days_ago(subject + "upgrade", 1, 6)
        sockets = []
        remote = _remote_from(s["command"])
        if remote:
            sockets.append(f"tcp ESTABLISHED 10.0.2.15:{40000 + pid % 20000} -> {remote}")
        elif s["app"] and not malicious:
            sockets.append(f"tcp ESTABLISHED 10.0.2.15:{40000 + pid % 20000} -> 52.84.150.39:443")
        parent = (
            "/usr/lib/systemd/systemd"
            if facts.package is not None and not malicious
            else "systemd --user"
            if s["home"] and not malicious
            else "/usr/sbin/cron -f"
            if malicious and _fraction(f["id"], "parent") < 0.5
            else "bash"
        )
        self.processes[pid] = ProcessFacts(
            pid=pid,
            exe=s["exe"],
            cmdline=s["command"] or s["exe"],
            user=owner,
            uid="0" if owner == "root" else "33" if owner == "www-data" else "1000",
            ppid=max(1, pid - 1 - int(_fraction(f["id"], "ppid") * 300)),
            parent=parent,
            started=self._days_ago(f["id"] + "start", 10, 60)
            if upgraded
            else self._days_ago(f["id"] + "start", 0, 1 if malicious else 9),
            sockets=sockets,
            exe_deleted=s["deleted"],
            environment=environment,
        )

    def _planted_process(self, pid: int, sample) -> None:
        """A planted behaviour sample: the process, the file it runs, what launched it and what was written
        with it, as the sample says."""
        subject = ioc_subject(sample.exe, sample.argv0, sample.loader)
        facts = self._file(subject)
        if facts.package is None:
            facts.owner = facts.group = sample.user
            facts.mode = "0755"
            facts.modified = self._days_ago(subject, 0, 2) if sample.malicious else self._days_ago(subject, 60, 300)
            facts.deleted = sample.deleted
            facts.reputation = ("malicious", sample.family) if sample.malicious else ("unknown", "")
        written = facts.modified or self.scanned
        for i, path in enumerate(sample.changed_with):
            other = self._file(path)
            other.modified = written + timedelta(minutes=2 + 3 * i)
            other.replaced = other.package is not None
            if other.package is None:
                other.mode, other.size = "0644", 60 + int(_fraction(path, "size") * 900)
                other.owner = other.group = sample.user if path.startswith("/home/") else "root"
        launcher = (
            sample.started_by.get("unit_file") or sample.started_by.get("cron_file") or sample.started_by.get("profile")
        )
        if launcher and launcher not in sample.changed_with and owning_package(launcher, self.host.family) is None:
            written_by = self._file(launcher)  # the installer wrote its launcher with it
            written_by.mode, written_by.size = "0644", 200 + int(_fraction(launcher, "size") * 600)
            written_by.owner = written_by.group = sample.user if launcher.startswith("/home/") else "root"
            written_by.modified = written + timedelta(minutes=5)
        if sample.remote:
            self.remotes[sample.remote] = sample.remote_is
        self.processes[pid] = ProcessFacts(
            pid=pid,
            exe=sample.exe,
            cmdline=sample.argv0,
            user=sample.user,
            uid="0" if sample.user == "root" else "33" if sample.user == "www-data" else "1000",
            ppid=max(1, pid - 1 - int(_fraction(subject, "ppid") * 300)),
            parent=sample.parent,
            started=written + timedelta(minutes=1) if sample.malicious else self._days_ago(subject + "start", 1, 20),
            sockets=[f"tcp ESTABLISHED 10.0.2.15:{40000 + pid % 20000} -> {sample.remote}"] if sample.remote else [],
            exe_deleted=sample.deleted,
            environment=dict(sample.loader),
            origin=dict(sample.started_by),
        )

    def _origin(self, proc: ProcessFacts) -> dict[str, str]:
        """What launched a process the scan saw: its package's unit, a cron entry or persistence unit the
        evidence implies for a malicious one (written when it was), or the login session it runs in."""
        exe = proc.exe.replace(" (deleted)", "")
        subject = self.files.get(ioc_subject(exe, proc.cmdline, proc.environment))
        pkg = owning_package(exe, self.host.family)
        if pkg is not None and pkg.units and proc.parent.endswith("/systemd"):
            return {"unit": pkg.units[0], "unit_file": f"/usr/lib/systemd/system/{pkg.units[0]}"}
        named = subject.path if subject is not None else exe
        stem = re.sub(r"[^\w-]", "", named.rsplit("/", 1)[-1].lstrip(".").split(".")[0]) or "job"
        if subject is not None and subject.reputation[0] == "malicious":
            cron = "cron" in proc.parent
            path = f"/etc/cron.d/{stem}" if cron else f"/etc/systemd/system/{stem}.service"
            written = self._file(path)
            written.mode, written.size = "0644", 120 + int(_fraction(path, "size") * 400)
            written.modified = (subject.modified or self.scanned) + timedelta(minutes=4)
            if cron:
                return {"cron_file": path, "entry": f"*/5 * * * * {proc.user} {proc.cmdline}"[:160]}
            return {"unit": f"{stem}.service", "unit_file": path}
        if proc.uid not in ("0", "33"):
            return {"session": f"user@{proc.uid}.service (the login session of {proc.user})"}
        return {"session": f"started from a shell by {proc.user}, under {proc.parent}"}

    def _tamper_a_setid_binary(self, compromised: bool, by_scanner: dict) -> None:
        """On hosts with evidence of compromise and no integrity check that would have shown it, attackers
        often replace a stock set-id binary (su, sudo, passwd): the simulation does so on about half of them."""
        if not compromised or self.host.enabled("integrity") or _fraction(self.hostname, "tamper") > 0.5:
            return
        stock = sorted(f["id"] for f in by_scanner.get("suid_sgid", []) if stock_privileged(f["id"], self.host.family))
        if stock:
            victim = stock[int(_fraction(self.hostname, "victim") * len(stock))]
            facts = self._file(victim)
            facts.replaced, facts.modified = True, self._days_ago(victim, 0, 5)
            facts.reputation = ("malicious", "Linux.Rootkit.TrojanizedSetuid")

    def _other_process(self, scanner: str, f: dict) -> None:
        meta = f.get("metadata") or {}
        pid_text = f["id"] if scanner == "processes" and f["id"].isdigit() else str(meta.get("pid", ""))
        if not pid_text.isdigit():
            return
        pid = int(pid_text)
        exe = (
            f.get("description", "").split(" ")[0]
            if scanner == "processes"
            else meta.get("exe") or meta.get("comm") or ""
        )
        proc = self.processes.get(pid)
        if proc is None:
            proc = ProcessFacts(
                pid=pid,
                exe=exe,
                cmdline=f.get("description", "") if scanner == "processes" else exe,
                user="root" if meta.get("uid", "0") == "0" else self.user,
                uid=str(meta.get("uid", "0")),
                ppid=1,
                parent="/usr/lib/systemd/systemd",
                started=self.installed,
            )
            self.processes[pid] = proc
        if scanner == "network":
            state = meta.get("state", "")
            proc.sockets.append(
                f"{meta.get('protocol', 'tcp')} {state or 'UDP'} {meta.get('lip')}:{meta.get('lport')}"
                + (f" -> {meta.get('rip')}:{meta.get('rport')}" if state == "ESTABLISHED" else "")
            )

    # -- tools ------------------------------------------------------------------------------------------
    def search_findings(
        self, query: str, scanner: str | None = None, severity: Severity | None = None, limit: int = 10
    ) -> dict:
        """Search the scan's findings by text (id, title, description or metadata), optionally filtered.

        Args:
            query: text to look for, e.g. a path, a pid or a module name
            scanner: only findings of this scanner, e.g. suid_sgid or ioc
            severity: only findings of this severity
            limit: at most this many results (1-20)
        """
        q = query.lower()
        hits = []
        for s, f in self.findings:
            if (scanner and s != scanner) or (severity and f["severity"] != severity):
                continue
            text = " ".join(
                [f["id"], f.get("title", ""), f.get("description", ""), json.dumps(f.get("metadata", {}))]
            ).lower()
            if q in text:
                hits.append({"id": f["id"], "scanner": s, "severity": f["severity"], "title": f.get("title", "")})
        order = ["critical", "high", "medium", "low", "info", "error"]
        hits.sort(key=lambda h: (order.index(h["severity"]) if h["severity"] in order else 9, h["id"]))
        return {"query": query, "total": len(hits), "results": hits[: max(1, min(limit, 20))]}

    def query_package_manager(self, path: str) -> dict:
        """Ask the package manager which installed package owns a file (dpkg -S / rpm -qf), the package's
        version and origin, and whether the file still verifies against the package database.

        Args:
            path: absolute path of the file
        """
        facts = self.files.get(path)
        pkg = facts.package if facts else owning_package(path, self.host.family)
        if pkg is None:
            return {"path": path, "owned_by": None, "note": "no installed package owns this path"}
        copied = script_source(path) if self.host.family == "debian" else None
        return {
            **(
                {"note": f"installed by {pkg.name}'s maintainer script from {copied['source']}; dpkg -S cannot name it"}
                if copied
                else {}
            ),
            "path": path,
            "owned_by": pkg.name,
            "version": pkg.version,
            "origin": origin_text(pkg, self.host.family, self.host.distro),
            "verify": "checksum differs from the package database" if facts and facts.replaced else "ok",
        }

    def hash_binary(self, path: str) -> dict:
        """SHA-256 of a file on the host, and whether it equals the digest the owning package recorded.

        Args:
            path: absolute path of the file
        """
        facts = self._known(path)
        if facts is None:
            return {"error": f"{path}: no such file on {self.hostname}"}
        if facts.deleted:
            return {
                "error": f"{path}: file was deleted from disk; a running process may still map it (/proc/<pid>/exe)"
            }
        sha = self._sha256(facts)
        return {
            "path": path,
            "sha256": sha,
            "size": facts.size,
            "package": facts.package.name if facts.package else None,
            "matches_package": (not facts.replaced) if facts.package else None,
        }

    def stat_file(self, path: str) -> dict:
        """Owner, group, permission bits, set-id bits, file capabilities and change time of a file.

        Args:
            path: absolute path of the file
        """
        facts = self._known(path)
        if facts is None:
            return {"error": f"{path}: no such file on {self.hostname}"}
        if facts.deleted:
            return {"error": f"{path}: no such file (deleted while still in use)"}
        mode = int(facts.mode, 8)
        return {
            "path": path,
            "owner": facts.owner,
            "group": facts.group,
            "mode": facts.mode,
            "setuid": bool(mode & 0o4000),
            "setgid": bool(mode & 0o2000),
            "world_writable": bool(mode & 0o002),
            "capabilities": facts.capabilities,
            "size": facts.size,
            "modified": (facts.modified or self.installed).strftime("%Y-%m-%d %H:%M"),
        }

    def lookup_hash_reputation(self, sha256: str) -> dict:
        """What is known about a SHA-256: a package build, a vendor release, known malware, or nothing.

        Args:
            sha256: the 64-character hex digest
        """
        verdict, name, source = self.reputation.get(sha256.lower(), ("unknown", "", ""))
        if verdict == "unknown":
            return {"sha256": sha256, "verdict": "unknown", "note": "not in any catalogue this host can reach"}
        return {"sha256": sha256, "verdict": verdict, "name": name, "source": source}

    def check_process_details(self, pid: int) -> dict:
        """Executable, command line, user, parent, start time and sockets of a running process.

        Args:
            pid: process id
        """
        proc = self.processes.get(pid)
        if proc is None:
            return {"error": f"no process with pid {pid} (it may have exited)"}
        return {
            "pid": pid,
            "exe": proc.exe + (" (deleted)" if proc.exe_deleted else ""),
            "cmdline": proc.cmdline,
            "user": proc.user,
            "uid": proc.uid,
            "ppid": proc.ppid,
            "parent": proc.parent,
            "started": proc.started.strftime("%Y-%m-%d %H:%M"),
            "sockets": proc.sockets,
            **({"loader_environment": proc.environment} if proc.environment else {}),
        }

    def query_baseline(self, finding_id: str) -> dict:
        """Whether a finding was already present in this host's earlier scans, and since when.

        Args:
            finding_id: finding id as in the scan
        """
        hit = next(((s, f) for s, f in self.findings if f["id"] == finding_id), None)
        if hit is None:
            return {"error": f"no finding with id {finding_id!r} in this scan"}
        scanner, f = hit
        first = self._first_seen(scanner, f)
        if first >= self.scanned - timedelta(hours=12):
            return {
                "finding_id": finding_id,
                "status": "new",
                "first_seen": self.scanned.strftime("%Y-%m-%d"),
                "earlier_scans": 0,
            }
        scans = max(1, (self.scanned - first).days // 7)
        return {
            "finding_id": finding_id,
            "status": "existing",
            "first_seen": first.strftime("%Y-%m-%d"),
            "earlier_scans": scans,
        }

    def _first_seen(self, scanner: str, f: dict) -> datetime:
        a = self.assessments[(scanner, f["id"])]
        if a.verdict == "contain":
            return self.scanned
        if scanner == "ioc":
            proc = self.processes.get(int(ioc_exe_and_pid(f["id"])[1] or 0))
            facts = self.files.get(ioc_subject(proc.exe, proc.cmdline, proc.environment)) if proc else None
            born = min(
                x
                for x in [
                    proc.started if proc else self.scanned,
                    facts.modified if facts and facts.modified else self.scanned,
                ]
            )
            return self.scanned if born >= self.scanned - timedelta(days=1) else born
        path = f["id"] if f["id"].startswith("/") else md(f, "path")
        facts = self.files.get(path)
        if facts and facts.modified and (facts.replaced or not facts.package or is_vendor(facts.package)):
            return facts.modified if facts.modified < self.scanned - timedelta(days=1) else self.scanned
        return self.installed

    def lookup_attack_technique(self, technique_id: str) -> dict:
        """Name and tactic of a MITRE ATT&CK technique id.

        Args:
            technique_id: technique id such as T1548.001
        """
        if technique_id not in attack.TECHNIQUES:
            return {"error": f"technique {technique_id} is not in the local ATT&CK table"}
        name, tactic = attack.TECHNIQUES[technique_id]
        return {"technique_id": technique_id, "name": name, "tactic": tactic}

    def find_process_origin(self, pid: int) -> dict:
        """What launched a process: the systemd unit it runs in and the unit's file, the cron entry or shell
        profile line that starts it, or the login session it belongs to.

        Args:
            pid: process id
        """
        proc = self.processes.get(pid)
        if proc is None:
            return {"error": f"no process with pid {pid} (it may have exited)"}
        return {"pid": pid, "parent": proc.parent, **proc.origin}

    def inspect_connection(self, address: str) -> dict:
        """Who is at the remote end of a connection (what threat intelligence says of the address) and which
        local processes hold sockets to it.

        Args:
            address: the remote end as host:port, as a process's socket list shows it
        """
        holders = [p for p in self.processes.values() if any(s.endswith("-> " + address) for s in p.sockets)]
        if not holders:
            return {"error": f"no socket on {self.hostname} is connected to {address}"}
        return {
            "address": address,
            "reputation": self.remotes.get(address) or _remote_reputation(address),
            "local_processes": [{"pid": p.pid, "exe": p.exe, "user": p.user} for p in holders],
        }

    def list_files_changed_near(self, path: str, minutes: int = 30) -> dict:
        """Files whose change time lies within some minutes of a file's own, with the package that owns each:
        what was written together with it (an upgrade replaces a package's files together; an intruder's
        tool arrives with its persistence).

        Args:
            path: absolute path of the file whose change time is the centre of the window
            minutes: half-width of the window in minutes (1-1440)
        """
        facts = self._known(path)
        if facts is None:
            return {"error": f"{path}: no such file on {self.hostname}"}
        centre = facts.modified or self.installed
        window = timedelta(minutes=max(1, min(minutes, 1440)))
        rows = {
            p: ((self.files[p].modified or self.installed), self.files[p].package)
            for p in self.on_disk
            if p != path and abs((self.files[p].modified or self.installed) - centre) <= window
        }
        if facts.package is not None and facts.modified != self.installed:  # an upgrade: the package's files
            for p in package_paths(facts.package.name, self.host.family):
                rows.setdefault(p, (centre, facts.package)) if p != path else None
        listed = [
            {"path": p, "changed": when.strftime("%Y-%m-%d %H:%M"), "owned_by": pkg.name if pkg else None}
            for p, (when, pkg) in sorted(rows.items())
        ]
        return {
            "path": path,
            "changed": centre.strftime("%Y-%m-%d %H:%M"),
            "window_minutes": window.seconds // 60 + window.days * 1440,
            "total": len(listed),
            "files": listed[:12],
        }

    # -- dispatch ---------------------------------------------------------------------------------------
    def call(self, name: str, arguments: dict | str) -> dict:
        """Run one tool call; returns the JSON-able result (an `error` key for tool-level failures)."""
        if name not in TOOL_NAMES:
            raise ToolError(f"unknown tool '{name}'; declared tools: {', '.join(TOOL_NAMES)}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as err:
                raise ToolError(f"arguments of {name} are not JSON: {err}") from None
        error = jsonschema.exceptions.best_match(ARGUMENT_VALIDATORS[name].iter_errors(arguments))
        if error is not None:
            raise ToolError(f"invalid arguments for {name}: {error.message}")
        return getattr(self, name)(**arguments)


def ioc_subject(exe: str, command: str, environment: dict | None = None) -> str:
    """The file an IOC is about: a preloaded library, the script an interpreter runs, else the executable."""
    preload = (environment or {}).get("LD_PRELOAD")
    return preload or script_path(command) or exe.replace(" (deleted)", "")


def _remote_from(command: str) -> str | None:
    """host:port a command line points at (a miner pool, a beacon), if any."""
    match = re.search(r"(?:-o\s+|--beacon\s+|--reverse\s+|stratum\+tcp://)([\w.-]+):(\d{2,5})", command)
    if not match:
        return None
    host, port = match.groups()
    if not host[0].isdigit():
        host = "203.0.113." + str(1 + int(_fraction(host) * 250))
    return f"{host}:{port}"


def _remote_reputation(address: str) -> str:
    """What threat intelligence says of a remote end the evidence does not describe, from its address alone."""
    host, _, port = address.rpartition(":")
    if host.startswith(("10.", "192.168.", "172.16.", "127.")):
        return "a private address"
    if port in ("3333", "4444", "5555", "14444", "45700"):
        return "listed as a cryptocurrency mining pool endpoint"
    if host.startswith("52.84."):
        return "Amazon CloudFront (content delivery network)"
    return "no reputation; not a service any catalogue knows"


class ToolError(Exception):
    """A tool call the environment refuses: unknown tool or arguments that break its schema."""


TOOL_NAMES = [
    "search_findings",
    "query_package_manager",
    "hash_binary",
    "stat_file",
    "lookup_hash_reputation",
    "check_process_details",
    "query_baseline",
    "lookup_attack_technique",
    "find_process_origin",
    "inspect_connection",
    "list_files_changed_near",
]


def _schema(name: str) -> dict:
    """The JSON schema transformers generates from the method's signature and docstring, closed to extra keys."""
    schema = get_json_schema(getattr(ScanEnvironment, name))
    schema["function"].pop("return", None)
    params = schema["function"]["parameters"]
    params["additionalProperties"] = False
    for prop in params["properties"].values():
        prop.pop("nullable", None)
    if "limit" in params["properties"]:
        params["properties"]["limit"].update(minimum=1, maximum=20)
    if "sha256" in params["properties"]:
        params["properties"]["sha256"]["pattern"] = "^[0-9a-fA-F]{64}$"
    if "minutes" in params["properties"]:
        params["properties"]["minutes"].update(minimum=1, maximum=1440)
    if "technique_id" in params["properties"]:
        params["properties"]["technique_id"]["pattern"] = "^T\\d{4}(\\.\\d{3})?$"
    return schema


TOOL_SCHEMAS: list[dict] = [_schema(name) for name in TOOL_NAMES]
TOOL_PARAMETERS = {s["function"]["name"]: s["function"]["parameters"] for s in TOOL_SCHEMAS}
# Built once: jsonschema.validate would re-check each schema on every call, most of an episode's build time.
ARGUMENT_VALIDATORS = {name: jsonschema.validators.validator_for(p)(p) for name, p in TOOL_PARAMETERS.items()}


def tool_result_text(result: dict[str, Any]) -> str:
    """How a tool result appears in a `tool` message: compact JSON."""
    return json.dumps(result, separators=(",", ":"), sort_keys=True)
