"""What the raw report shows about the host, read by the judge itself: which findings are malicious, which are
exposures anyone could use to become root, the sysctl values in force, and whether the host forwards traffic for
container or VM networks. Nothing here reads an enriched output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secml_recipes.judge.knowledge import (
    BENIGN_SCRATCH,
    INJECTION,
    MINER_NAMES,
    PACKAGE_DIRS,
    ROOT_RUN_FILES,
    RUNTIME,
    SCRATCH_DIRS,
    SETID,
    canonical_path,
    gtfobins_functions,
    unit_template,
)


@dataclass
class Evidence:
    finding_id: str
    reason: str
    path: str = ""  # the executable or file it is about
    pid: str = ""


@dataclass
class HostEvidence:
    malicious: list[Evidence] = field(default_factory=list)
    exposures: list[Evidence] = field(default_factory=list)  # anyone-to-root misconfigurations
    # set-id files outside the packages and their folders: unknown code any local user runs as the file's owner
    unexplained_setid: list[Evidence] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # dotted name -> value in force
    runtimes: list[str] = field(default_factory=list)  # container/VM runtime evidence, "process dockerd" etc.
    setid_paths: set[str] = field(default_factory=set)  # set-id files the scan lists
    world_writable: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)

    @property
    def compromised(self) -> bool:
        return bool(self.malicious)

    @property
    def malicious_names(self) -> set[str]:
        """Basenames (and their versionless stems) of malicious executables: what a persistence unit is named after."""
        names = set()
        for e in self.malicious:
            base = e.path.rstrip("/").rsplit("/", 1)[-1]
            if base:
                names |= {base, re.split(r"[-_.]?\d", base)[0] or base}
        return names

    @classmethod
    def from_report(cls, report: dict) -> HostEvidence:
        host = cls()
        for result in report.get("results") or []:
            scanner = result.get("scanner", "")
            for f in result.get("findings") or []:
                if isinstance(f, dict) and "id" in f:
                    _READERS.get(scanner, _ignore)(host, f)
        context = (report.get("meta") or {}).get("secml_context") or {}
        # a split part's view of its whole host ("elsewhere" in corpora built before the context left the teacher)
        for f in (context.get("top_findings") or []) + (context.get("elsewhere") or []):
            if isinstance(f, dict) and "id" in f:
                _READERS.get(f.get("scanner", ""), _ignore)(host, {"metadata": {}, **f})
        host.runtimes = sorted(set(host.runtimes))
        return host


def _md(f: dict, key: str) -> str:
    return str((f.get("metadata") or {}).get(key) or "")


def _ignore(host: HostEvidence, f: dict) -> None:
    return None


def _in(path: str, dirs: tuple[str, ...]) -> bool:
    return any(path.startswith(d) for d in dirs)


def _executable_reasons(path: str, command: str, deleted: bool) -> list[str]:
    reasons = []
    base = path.rsplit("/", 1)[-1]
    if _in(path, SCRATCH_DIRS) and not BENIGN_SCRATCH.search(path) or path.startswith("./"):
        reasons.append("runs from world-writable scratch space")
    if deleted and not _in(path, PACKAGE_DIRS):
        reasons.append("deleted executable outside the package-managed trees")
    if re.sub(r"[-_.]?\d.*$", "", base) in MINER_NAMES or base in MINER_NAMES:
        reasons.append("a public cryptominer's name")
    if INJECTION.search(command):
        reasons.append("its command line addresses an AI analyst (prompt injection)")
    return reasons


def _read_ioc(host: HostEvidence, f: dict) -> None:
    fid = f["id"]
    exe, _, pid = fid.rpartition(":")
    if not pid.isdigit():
        exe, pid = fid, _md(f, "pid")
    deleted = " (deleted)" in exe or _md(f, "deleted_executable") == "true"
    path = exe.replace(" (deleted)", "").strip()
    if INJECTION.search(path):  # text written into the id: the executable is its first word
        path = path.split()[0]
    reasons = _executable_reasons(path, f"{_md(f, 'command')} {exe}", deleted)
    if reasons:
        host.malicious.append(Evidence(fid, "; ".join(reasons), path, pid))
    host.runtimes += [f"process {path.rsplit('/', 1)[-1]}"] if path.rsplit("/", 1)[-1] in RUNTIME["processes"] else []


def _read_process(host: HostEvidence, f: dict) -> None:
    exe = str(f.get("description") or "").split()[0] if f.get("description") else ""
    base = exe.rsplit("/", 1)[-1]
    if base in RUNTIME["processes"]:
        host.runtimes.append(f"process {base}")


def _read_module(host: HostEvidence, f: dict) -> None:
    if f["id"] in RUNTIME["modules"]:
        host.runtimes.append(f"module {f['id']}")


def _read_container(host: HostEvidence, f: dict) -> None:
    if f["id"] != "container:none":
        host.runtimes.append(f"container runtime {_md(f, 'runtime') or 'unknown'}")


def _read_unit(host: HostEvidence, f: dict) -> None:
    unit = _md(f, "unit") or f["id"].rsplit(":", 1)[-1]
    host.units.add(unit)
    if unit_template(unit) in RUNTIME["units"]:
        host.runtimes.append(f"unit {unit}")


def _read_sysctl(host: HostEvidence, f: dict) -> None:
    fid = f["id"]
    path = fid if fid.startswith("/proc/sys/") else _md(f, "path")
    value = _md(f, "current") or _md(f, "value")
    if path.startswith("/proc/sys/") and value:
        host.sysctls[path.removeprefix("/proc/sys/").replace("/", ".")] = value


def _read_setid(host: HostEvidence, f: dict) -> None:
    path = canonical_path(f["id"])
    host.setid_paths.add(path)
    functions = gtfobins_functions(path)
    if functions and path not in SETID["paths"] and {"shell", "file-write", "command"} & set(functions):
        host.exposures.append(Evidence(f["id"], f"set-id {path} gives a root shell or file write (GTFOBins)", path))
    elif path not in SETID["paths"] and not path.startswith(PACKAGE_DIRS):
        host.unexplained_setid.append(Evidence(f["id"], f"set-id {path} that no package ships", path))


def _read_world_writable(host: HostEvidence, f: dict) -> None:
    path, rule = f["id"], _md(f, "rule")
    if rule == "setuid_interpreter":
        host.setid_paths.add(canonical_path(path))
        host.malicious.append(Evidence(path, "set-uid shell or interpreter: a root backdoor", path))
    elif rule != "file_capability":
        host.world_writable.add(path)
        if ROOT_RUN_FILES.search(path):
            host.exposures.append(Evidence(path, f"world-writable {path} is run or read by root", path))


def _read_yara(host: HostEvidence, f: dict) -> None:
    host.malicious.append(Evidence(f["id"], f"pattern {_md(f, 'pattern')} in {_md(f, 'path')}", _md(f, "path")))


def _read_exec_trace(host: HostEvidence, f: dict) -> None:
    if INJECTION.search(_md(f, "comm") + " " + str(f.get("description") or "")):
        host.malicious.append(Evidence(f["id"], "prompt injection in a traced command", pid=_md(f, "pid")))


_READERS = {
    "ioc": _read_ioc,
    "processes": _read_process,
    "modules": _read_module,
    "containers": _read_container,
    "systemd_units": _read_unit,
    "kernel_params": _read_sysctl,
    "kernel_hardening": lambda host, f: _read_sysctl(host, f) if f["id"].startswith("kernel:sysctl:") else None,
    "suid_sgid": _read_setid,
    "world_writable": _read_world_writable,
    "yara": _read_yara,
    "ebpf_exec_trace": _read_exec_trace,
}
