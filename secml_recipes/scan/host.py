"""A generated machine: its state (files, processes, modules, mounts, units, settings) and the sys-scan
command line run on it. Built from a `HostPlan` by a seeded RNG, so the same plan gives the same host.

The host knows nothing about what a scanner version reports; `v5_0_0.py` reads this state the way the
5.0.0 scanners read a real /proc, /sys and filesystem. Profiles (`PROFILES`) decide what kind of machine
it is and what is wrong with it; everything else is drawn from `catalog.py`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from secml_recipes.knowledge_files import NUM, STR, load_table, mapping, record, seq
from secml_recipes.scan import catalog as cat

PROFILES = ["hardened_server", "developer_laptop", "container_host", "misconfigured_server", "compromised_host"]
PROFILE_WEIGHTS = [0.2, 0.25, 0.2, 0.2, 0.15]
PROFILE_ROLES = {  # role, weight
    "hardened_server": (("server", 0.5), ("vm", 0.5)),
    "developer_laptop": (("laptop", 0.75), ("workstation", 0.25)),
    "container_host": (("k8s_node", 0.55), ("vm", 0.45)),
    "misconfigured_server": (("server", 0.4), ("vm", 0.6)),
    "compromised_host": (("vm", 0.5), ("server", 0.25), ("laptop", 0.25)),
}
ROLE_DISTROS = {  # distro key, weight
    "laptop": (("ubuntu-24.04", 0.55), ("ubuntu-22.04", 0.15), ("fedora-41", 0.2), ("debian-12", 0.1)),
    "workstation": (("ubuntu-24.04", 0.45), ("ubuntu-22.04", 0.2), ("fedora-41", 0.2), ("debian-12", 0.15)),
    "server": (("ubuntu-22.04", 0.3), ("ubuntu-24.04", 0.25), ("debian-12", 0.2), ("rhel-9", 0.25)),
    "vm": (("ubuntu-24.04", 0.35), ("ubuntu-22.04", 0.25), ("debian-12", 0.2), ("rhel-9", 0.2)),
    "k8s_node": (("ubuntu-22.04", 0.45), ("ubuntu-24.04", 0.35), ("rhel-9", 0.2)),
}
SUID_ROOTS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")
WW_ROOTS = ("/usr/bin", "/bin", "/usr/local/bin", "/etc", "/var")


@dataclass
class HostPlan:
    """What a generated host is: who runs it, what is wrong with it, and (optionally) pinned choices
    that `plan_matching` uses to build hosts like a given real report."""

    host_id: str
    hostname: str
    profile: str
    seed: int
    pins: dict = field(default_factory=dict)  # role, distro, as_root, options, kernel, os_pretty


@dataclass
class ScanOptions:
    """The sys-scan command line: the Config fields that change what a report holds."""

    argv0: str = "sys-scan"
    flags: tuple[str, ...] = ("--canonical",)  # as typed, in order (without --output)
    output: str | None = "report.json"

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def value(self, flag: str) -> str | None:
        """The value typed after `flag` (None when the flag is absent or has none)."""
        for i, f in enumerate(self.flags):
            if f == flag and i + 1 < len(self.flags) and not self.flags[i + 1].startswith("-"):
                return self.flags[i + 1]
        return None

    def cmdline(self) -> str:
        """/proc/self/cmdline with NULs as spaces: the trailing NUL becomes a trailing space."""
        argv = [self.argv0, *self.flags] + (["--output", self.output] if self.output else [])
        return " ".join(argv) + " "


@dataclass
class Proc:
    pid: int
    ppid: int
    uid: int
    gid: int
    argv0: str  # "" for kernel threads and zombies
    exe: str  # readlink(/proc/pid/exe); "" when none; ends with " (deleted)" after an upgrade
    comm: str
    label: str = "unconfined"  # /proc/pid/attr/current
    env_first: str = ""  # the first NUL-terminated entry of /proc/pid/environ
    cgroup: str = "0::/"
    kernel_thread: bool = False


@dataclass
class DirListing:
    """A directory's regular files as readdir returns them: `count` files in total, of which `notable`
    carry a mode bit or attribute a scanner looks at, at their positions in readdir order."""

    count: int
    notable: list[tuple[int, str, dict]]  # (position, name, {"suid", "ww", "caps", "shebang", "inode"})


@dataclass
class Host:
    plan: HostPlan
    role: str
    tags: set[str]
    distro: cat.Distro
    kernel: str
    os_pretty: str
    options: ScanOptions
    scan_uid: int
    user: str
    user_uid: int
    efi: bool = True
    tpm: bool = True
    lockdown: str = "[none] integrity confidentiality"
    ima_policy: str = ""
    sysctl: dict = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)  # /proc/modules order
    module_paths: dict = field(default_factory=dict)  # name -> modules.dep path ("" when not listed)
    hidden_sysfs: set = field(default_factory=set)
    sysfs_only: list = field(default_factory=list)
    tainted: int = 0
    procs: list[Proc] = field(default_factory=list)
    short_lived: list[tuple[int, str, int]] = field(default_factory=list)  # (pid, comm, ppid)
    suid_dirs: dict = field(default_factory=dict)  # root -> [(path, inode)] in readdir order
    ww_dirs: dict = field(default_factory=dict)  # dir -> DirListing
    mounts: list[tuple[str, str, str, str]] = field(default_factory=list)
    units: dict = field(default_factory=dict)  # dir -> [(file name, {key: value})] (ExecStart units only)
    audit_installed: bool = False
    audit_rules: str = ""
    containers: list[dict] = field(default_factory=list)
    apparmor: bool = False
    selinux: dict | None = None  # {"enforce": "1"/"0", "config": "enforcing"}
    pkg_verify_lines: list[str] = field(default_factory=list)
    yara_files: list[tuple[str, str]] = field(default_factory=list)  # (path, file prefix text)
    rules_mitre: list[tuple[str, str, str, str]] = field(default_factory=list)  # (field, contains, sev, mitre)
    yara_patterns: list[str] = field(default_factory=list)
    net_files_missing: tuple[str, ...] = ()
    malware: dict | None = None

    @property
    def as_root(self) -> bool:
        return self.scan_uid == 0

    @property
    def home(self) -> str:
        return f"/home/{self.user}"


def _pick(rng: random.Random, weighted) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights=weights)[0]


# -- plans --------------------------------------------------------------------------------------------


def plan_hosts(n_hosts: int, seed: int) -> list[HostPlan]:
    """Host identities and profiles for `n_hosts` hosts: host_id is stable for (seed, index)."""
    rng = random.Random(seed)
    plans = []
    for i in range(n_hosts):
        profile = rng.choices(PROFILES, weights=PROFILE_WEIGHTS)[0]
        host_id = hashlib.sha256(f"secml:{seed}:{i}".encode()).hexdigest()[:16]
        plans.append(HostPlan(host_id=host_id, hostname="", profile=profile, seed=rng.randint(0, 2**31)))
    return plans


def plan_hosts_per_profile(n_per_profile: int, seed: int) -> list[HostPlan]:
    """`n_per_profile` host plans of every profile (for checks that need each profile at a known count); host_id
    is stable for (seed, profile, index) and differs from `plan_hosts`' ids."""
    rng = random.Random(seed)
    return [
        HostPlan(
            host_id=hashlib.sha256(f"secml:{seed}:{profile}:{i}".encode()).hexdigest()[:16],
            hostname="",
            profile=profile,
            seed=rng.randint(0, 2**31),
        )
        for profile in PROFILES
        for i in range(n_per_profile)
    ]


def plan_matching(report: dict, n_hosts: int, seed: int) -> list[HostPlan]:
    """Plans for hosts like the machine behind a real report: the same distribution and release, kernel,
    scanning account (root or not), command line and kind of machine (read from its modules)."""
    meta = report.get("meta", {})
    distro = next(
        (k for k, d in cat.DISTROS.items() if d.os_id == meta.get("os_id") and d.os_version == meta.get("os_version")),
        None,
    )
    modules = {f["id"] for r in report.get("results", []) if r.get("scanner") == "modules" for f in r["findings"]}
    laptop = bool(modules & {"iwlwifi", "snd_hda_intel", "btusb", "uvcvideo", "i915", "amdgpu"})
    role = "laptop" if laptop else ("vm" if modules & {"virtio_net", "hv_vmbus", "ena"} else "server")
    profile = "developer_laptop" if laptop else "hardened_server"
    argv = meta.get("cmdline", "sys-scan ").split()
    flags, output = [], None
    i = 1
    while i < len(argv):
        if argv[i] == "--output" and i + 1 < len(argv):
            output, i = argv[i + 1], i + 2
            continue
        flags.append(argv[i])
        i += 1
    pins = {
        "role": role,
        "as_root": meta.get("euid") == "0",
        "profile_tags": {"matched"},
        "options": ScanOptions(argv[0] if argv else "sys-scan", tuple(flags), output),
    }
    if distro:
        pins["distro"] = distro
        if meta.get("kernel"):
            pins["kernel"] = meta["kernel"]
        if meta.get("os_pretty"):
            pins["os_pretty"] = meta["os_pretty"]
    rng = random.Random(seed)
    return [
        HostPlan(
            host_id=hashlib.sha256(f"secml-match:{seed}:{i}".encode()).hexdigest()[:16],
            hostname="",
            profile=profile,
            seed=rng.randint(0, 2**31),
            pins=dict(pins),
        )
        for i in range(n_hosts)
    ]


# -- the command line ---------------------------------------------------------------------------------

# Which flag sets each profile runs, how often (generator/host.yaml); --output is added for most runs.
_FLAG_SET = record({"weight": NUM, "flags": seq(STR)})
_CLI = load_table(__package__, "generator/host.yaml", record({"option_sets": mapping(seq(_FLAG_SET))}))
OPTION_SETS: dict[str, tuple[tuple[tuple[str, ...], float], ...]] = {  # profile -> ((flags, weight), ...)
    profile: tuple((tuple(r["flags"]), r["weight"]) for r in rows) for profile, rows in _CLI["option_sets"].items()
}
ROOT_SHARE = {
    "developer_laptop": 0.35,
    "hardened_server": 0.9,
    "container_host": 0.85,
    "misconfigured_server": 0.7,
    "compromised_host": 0.75,
}


def _options(rng: random.Random, profile: str, as_root: bool) -> ScanOptions:
    flags = _pick(rng, OPTION_SETS[profile])
    argv0 = rng.choice(["sys-scan"] * 6 + ["/usr/bin/sys-scan", "./sys-scan"])
    output = None if rng.random() < 0.08 else rng.choice(["report.json"] * 4 + ["/tmp/sys-scan.json", "scan.json"])
    return ScanOptions(argv0=argv0, flags=tuple(flags), output=output)


# -- the machine ----------------------------------------------------------------------------------------


def build_host(plan: HostPlan) -> Host:
    """The machine behind `plan`, every aspect drawn from its seeded RNG in a fixed order."""
    rng = random.Random(plan.seed)
    pins = plan.pins
    role = pins.get("role") or _pick(rng, PROFILE_ROLES[plan.profile])
    distro_key = pins.get("distro") or _pick(rng, ROLE_DISTROS[role])
    distro = cat.DISTROS[distro_key]
    as_root = pins["as_root"] if "as_root" in pins else rng.random() < ROOT_SHARE[plan.profile]
    user = rng.choice(cat.USERS)
    user_uid = 1000 if rng.random() < 0.8 else rng.choice([1001, 1002, 1003])
    tags = _role_tags(rng, role, plan.profile)
    host = Host(
        plan=plan,
        role=role,
        tags=tags,
        distro=distro,
        kernel=pins.get("kernel") or rng.choice(distro.kernels),
        os_pretty=pins.get("os_pretty") or _os_pretty(rng, distro, role),
        options=pins.get("options") or _options(rng, plan.profile, as_root),
        scan_uid=0 if as_root else user_uid,
        user=user,
        user_uid=user_uid,
    )
    stem = rng.choice(cat.HOSTNAME_STEMS[role])  # drawn even when pinned, so the RNG stream stays the same
    number, letter = rng.randint(1, 999), rng.choice("abcdefgh")
    if not plan.hostname:
        plan.hostname = f"{stem}-{number % 100:02d}{letter}" if "-" in stem or role != "laptop" else f"{stem}{number}"
    _firmware(rng, host)
    _sysctls(rng, host)
    _modules(rng, host)
    _processes(rng, host)
    _suid_and_files(rng, host)
    _mounts(rng, host)
    _units(rng, host)
    _audit(rng, host)
    _mac(rng, host)
    _package_verification(rng, host)
    if plan.profile == "compromised_host":
        _compromise(rng, host)
    _rules(rng, host)
    _short_lived(rng, host)
    host.procs.sort(key=lambda p: p.pid)
    if rng.random() < 0.03:  # IPv6 disabled on the kernel command line
        host.net_files_missing = ("/proc/net/tcp6", "/proc/net/udp6")
    return host


def _os_pretty(rng: random.Random, distro: cat.Distro, role: str) -> str:
    if distro.os_id == "fedora":
        return distro.os_pretty[0] if role in ("laptop", "workstation") else distro.os_pretty[1]
    return rng.choice(distro.os_pretty)


def _role_tags(rng: random.Random, role: str, profile: str) -> set[str]:
    tags = {role}
    if role in ("server", "vm"):
        tags |= {t for t, p in (("web", 0.45), ("db", 0.3), ("containers", 0.2), ("libvirt", 0.05)) if rng.random() < p}
    if role == "k8s_node" or profile == "container_host":
        tags |= {"containers", "k8s_node"} if role == "k8s_node" else {"containers"}
    if role in ("laptop", "workstation"):
        tags |= {
            t
            for t, p in (("containers", 0.3), ("libvirt", 0.15), ("nvidia", 0.15), ("dev_home", 0.55))
            if rng.random() < p
        }
    if role == "vm" and rng.random() < 0.15:
        tags.add("vmware")
    return tags


def _firmware(rng: random.Random, host: Host) -> None:
    desktop = host.role in ("laptop", "workstation")
    host.efi = desktop or rng.random() < 0.6
    host.tpm = (desktop and rng.random() < 0.9) or (not desktop and rng.random() < 0.3)
    secure_boot = host.efi and rng.random() < (0.75 if desktop else 0.4)
    host.lockdown = "none [integrity] confidentiality" if secure_boot else "[none] integrity confidentiality"
    if host.distro.pkg_tool == "rpm" and host.as_root and rng.random() < 0.1:
        host.ima_policy = "measure func=BPRM_CHECK mask=MAY_EXEC\n" + (
            "appraise func=MODULE_CHECK appraise_type=imasig\n" if rng.random() < 0.5 else ""
        )


def _sysctls(rng: random.Random, host: Host) -> None:
    s = dict(host.distro.sysctl)
    profile = host.plan.profile
    if "containers" in host.tags or "libvirt" in host.tags or "k8s_node" in host.tags:
        s["net/ipv4/ip_forward"] = "1"
    if host.role == "laptop" and rng.random() < 0.3:  # lxd / libvirt bridges on developer machines
        s["net/ipv4/ip_forward"] = "1"
    if profile == "hardened_server":
        s.update(
            {
                "kernel/kptr_restrict": rng.choice(["1", "2"]) if rng.random() < 0.8 else "1",
                "kernel/dmesg_restrict": "1",
                "kernel/kexec_load_disabled": "1" if rng.random() < 0.7 else "0",
                "kernel/sysrq": "0" if rng.random() < 0.7 else s["kernel/sysrq"],
                "net/ipv4/conf/all/accept_redirects": "0",
                "net/ipv4/conf/all/rp_filter": "1",
            }
        )
    elif profile in ("misconfigured_server", "compromised_host"):
        for key, bad in (
            ("kernel/randomize_va_space", "0"),
            ("kernel/kptr_restrict", "0"),
            ("kernel/dmesg_restrict", "0"),
            ("net/ipv4/tcp_syncookies", "0"),
            ("net/ipv4/conf/all/accept_source_route", "1"),
            ("kernel/sysrq", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
        ):
            if rng.random() < (0.3 if profile == "misconfigured_server" else 0.12):
                s[key] = bad
    host.sysctl = s


def _modules(rng: random.Random, host: Host) -> None:
    names: list[str] = []
    for group, p in cat.ROLE_MODULE_GROUPS[host.role]:
        if rng.random() < p:
            names += [m for m in cat.MODULE_GROUPS[group] if rng.random() < 0.97]
    for tag in ("containers", "libvirt"):
        if tag in host.tags:
            names += cat.MODULE_GROUPS["docker" if tag == "containers" else "libvirt"]
    if host.distro.os_id in ("rhel", "fedora"):
        names += [m for m in cat.MODULE_GROUPS["rhel_core"] if rng.random() < 0.8]
    oot = []
    if "nvidia" in host.tags:
        oot += cat.OUT_OF_TREE_GROUPS["nvidia"]
    if "libvirt" in host.tags and host.role in ("laptop", "workstation") and rng.random() < 0.4:
        oot += cat.OUT_OF_TREE_GROUPS["virtualbox"]
    seen, ordered = set(), []
    for m in names + list(oot):
        if m not in seen:
            seen.add(m)
            ordered.append(m)
    rng.shuffle(ordered)  # /proc/modules lists the most recently loaded first
    host.modules = ordered
    ext = host.distro.module_ext
    for m in ordered:
        sub = "updates/dkms" if m in oot else "kernel/drivers/misc"
        host.module_paths[m] = f"{sub}/{m}{ext if m not in oot else '.ko'}"
    host.sysfs_only = rng.sample(cat.SYSFS_ONLY_BUILTINS, rng.randint(18, len(cat.SYSFS_ONLY_BUILTINS)))
    host.tainted = 4096 if oot else (0 if rng.random() < 0.7 else rng.choice([512, 4096 + 512, 8192]))
    if oot:
        host.tainted |= 1 if "nvidia" in host.tags else 0


# -- processes ---------------------------------------------------------------------------------------


def _uid_of(spec: str, host: Host) -> int:
    if spec == "root":
        return 0
    if spec == "@user":
        return host.user_uid
    return int(spec)


def _kernel_thread_pids(rng: random.Random, host: Host, max_pid: int) -> list[int]:
    count = {
        "laptop": (130, 185),
        "workstation": (160, 320),
        "server": (170, 420),
        "vm": (60, 125),
        "k8s_node": (90, 210),
    }[host.role]
    n = rng.randint(*count)
    dense = [p for p in range(2, 100) if rng.random() < 0.86]
    sparse = sorted(rng.sample(range(100, 1200), max(0, int(n * 0.22))))
    late = sorted(rng.sample(range(1200, max_pid), max(0, n - len(dense) - len(sparse))))
    return sorted(set(dense + sparse + late))[:n]


def _processes(rng: random.Random, host: Host) -> None:
    max_pid = rng.randint(20_000, 450_000)
    procs: list[Proc] = []
    for pid in _kernel_thread_pids(rng, host, max_pid):
        procs.append(
            Proc(
                pid,
                2,
                0,
                0,
                "",
                "",
                rng.choice(
                    [
                        "kworker/0:1-events",
                        "ksoftirqd/0",
                        "migration/1",
                        "rcu_preempt",
                        "kthreadd",
                        "cpuhp/2",
                        "irq/125-iwlwifi",
                    ]
                ),
                kernel_thread=True,
            )
        )
    taken = {p.pid for p in procs}

    def new_pid(lo: int, hi: int) -> int:
        while True:
            pid = rng.randint(lo, hi)
            if pid not in taken:
                taken.add(pid)
                return pid

    catalog: list[cat.Proc] = list(cat.SYSTEM_PROCESSES["systemd"])
    catalog += cat.SYSTEM_PROCESSES.get(host.distro.os_id, ())
    desktop = host.role in ("laptop", "workstation")
    groups = ["desktop_system", "desktop_session", "desktop_apps"] if desktop else ["server"]
    groups += [g for g in ("web", "db") if g in host.tags]
    if "k8s_node" in host.tags:
        groups.append("k8s")
    elif "containers" in host.tags:
        groups.append("containers")
    for group in groups:
        for spec in cat.ROLE_PROCESSES[group]:
            if group == "desktop_apps" and rng.random() < 0.45:
                continue
            catalog.append(spec)
    procs.append(Proc(1, 0, 0, 0, "/sbin/init", "/usr/lib/systemd/systemd", "systemd"))
    system_hi = min(4000, max_pid)
    for spec in catalog:
        if spec.argv0 == "/sbin/init":
            continue
        uid = _uid_of(spec.uid, host)
        for _ in range(spec.count):
            lo, hi = (300, system_hi) if uid == 0 or spec.uid not in ("@user",) else (system_hi, max_pid)
            argv0 = spec.argv0.format(hostname=host.plan.hostname or "host", user=host.user)
            procs.append(
                Proc(new_pid(lo, hi), 1, uid, uid if uid else 0, argv0, spec.exe, spec.comm, label=_label(host, spec))
            )
    if desktop and "dev_home" in host.tags:
        for argv0, exe in rng.sample(cat.DEV_HOME_PROCESSES, rng.randint(1, 2)):
            argv0, exe = argv0.format(home=host.home), exe.format(home=host.home)
            procs.append(
                Proc(
                    new_pid(system_hi, max_pid),
                    1,
                    host.user_uid,
                    host.user_uid,
                    argv0,
                    exe,
                    exe.rsplit("/", 1)[-1][:15],
                )
            )
    # long-running daemons whose binary an upgrade replaced
    if rng.random() < (0.3 if desktop else 0.2):
        for p in rng.sample(
            [p for p in procs if p.exe in cat.UPGRADED_EXES],
            k=min(rng.randint(1, 2), len([p for p in procs if p.exe in cat.UPGRADED_EXES])),
        ):
            p.exe += " (deleted)"
    # zombies: userland pids with an empty cmdline
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        procs.append(Proc(new_pid(system_hi, max_pid), 1, host.user_uid, host.user_uid, "", "", "defunct"))
    if "containers" in host.tags:
        _containers(rng, host, procs, new_pid, max_pid)
    procs.sort(key=lambda p: p.pid)
    host.procs = procs


def _label(host: Host, spec: cat.Proc) -> str:
    if host.distro.mac == "selinux":
        return (
            "system_u:system_r:unconfined_service_t:s0"
            if spec.uid == "root"
            else "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
        )
    if spec.exe.startswith("/snap/"):
        return f"snap.{spec.comm}.{spec.comm} (enforce)"
    if spec.exe in ("/usr/sbin/cupsd", "/usr/sbin/cups-browsed", "/usr/sbin/rsyslogd", "/usr/libexec/colord"):
        return f"{spec.exe} (enforce)"
    return "unconfined"


def _containers(rng: random.Random, host: Host, procs: list[Proc], new_pid, max_pid: int) -> None:
    k8s = "k8s_node" in host.tags
    for i in range(rng.randint(2, 14) if k8s else rng.randint(1, 6)):
        full = hashlib.sha256(f"{host.plan.host_id}:ctr:{i}".encode()).hexdigest()
        if k8s:
            pod = hashlib.sha256(f"{host.plan.host_id}:pod:{i}".encode()).hexdigest()
            pod_uid = f"{pod[:8]}_{pod[8:12]}_{pod[12:16]}_{pod[16:20]}_{pod[20:32]}"
            qos = rng.choice(["burstable", "besteffort"])
            cgroup = (
                f"0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{pod_uid}.slice/cri-containerd-{full}.scope"
            )
            runtime = "containerd"
        elif rng.random() < 0.15:
            uid = host.user_uid
            cgroup = f"0::/user.slice/user-{uid}.slice/user@{uid}.service/user.slice/libpod-{full}.scope"
            runtime = "unknown"
        else:
            cgroup = f"0::/system.slice/docker-{full}.scope"
            runtime = "docker"
        image = rng.choice(
            [
                ("nginx: master process nginx -g daemon off;", "/usr/sbin/nginx", "nginx"),
                ("postgres", "/usr/lib/postgresql/16/bin/postgres", "postgres"),
                ("/usr/local/bin/python3", "/usr/local/bin/python3.12", "python3"),
                ("node", "/usr/local/bin/node", "node"),
                ("redis-server *:6379", "/usr/local/bin/redis-server", "redis-server"),
                ("/app/server", "/app/server", "server"),
                ("/pause", "/pause", "pause"),
            ]
        )
        pids = []
        for _ in range(rng.randint(1, 3)):
            pid = new_pid(4000, max_pid)
            pids.append(pid)
            procs.append(
                Proc(
                    pid,
                    1,
                    0,
                    0,
                    image[0],
                    image[1],
                    image[2],
                    label="docker-default (enforce)"
                    if host.distro.mac == "apparmor"
                    else "system_u:system_r:container_t:s0:c12,c541",
                    cgroup=cgroup,
                )
            )
        host.containers.append({"id": full, "runtime": runtime, "cgroup": cgroup, "pids": pids})


def _short_lived(rng: random.Random, host: Host) -> None:
    """Processes born during the 3 s (or --ioc-exec-trace N s) /proc polling of the exec-trace scanner."""
    seconds = int(host.options.value("--ioc-exec-trace") or 3)
    rate = {"laptop": 0.35, "workstation": 0.5, "server": 0.5, "vm": 0.4, "k8s_node": 1.6}[host.role]
    n = min(40, sum(1 for _ in range(int(seconds * 10)) if rng.random() < rate / 10))
    next_pid = max(p.pid for p in host.procs) + rng.randint(3, 400)
    by_comm = {p.comm: p.pid for p in host.procs}
    for _ in range(n):
        comm, parent = rng.choice(cat.SHORT_LIVED)
        ppid = 2 if parent == "kthreadd" else by_comm.get(parent, 1)
        host.short_lived.append((next_pid, comm, ppid))
        next_pid += rng.randint(1, 40)


# -- files -------------------------------------------------------------------------------------------


def _suid_and_files(rng: random.Random, host: Host) -> None:
    os_id = host.distro.os_id
    desktop = host.role in ("laptop", "workstation")
    table = cat.SUID_SGID[os_id]
    paths = list(table["base"]) + list(table["desktop" if desktop else "server"])
    paths += [p for p in table["extra"] if rng.random() < 0.12]
    if "containers" in host.tags and os_id in ("ubuntu", "debian"):
        paths += ["/usr/bin/newuidmap", "/usr/bin/newgidmap"]
    usr_bin = sorted({p for p in paths if p.startswith("/usr/bin/")})
    usr_sbin = sorted({p for p in paths if p.startswith("/usr/sbin/")})
    inodes = {p: rng.randint(100_000, 9_000_000) for p in usr_bin + usr_sbin}
    rng.shuffle(usr_bin)
    rng.shuffle(usr_sbin)
    # merged-usr: /bin and /sbin are links to usr/bin and usr/sbin, listing the same files
    host.suid_dirs = {
        "/bin": [("/bin/" + p.rsplit("/", 1)[1], inodes[p]) for p in usr_bin],
        "/sbin": [("/sbin/" + p.rsplit("/", 1)[1], inodes[p]) for p in usr_sbin],
        "/usr/bin": [(p, inodes[p]) for p in usr_bin],
        "/usr/sbin": [(p, inodes[p]) for p in usr_sbin],
        "/usr/local/bin": [],
        "/usr/local/sbin": [],
    }
    caps_table = cat.FILE_CAPS[os_id]
    caps = list(caps_table["base"]) + (list(caps_table["desktop"]) if desktop else [])
    caps += [p for p in caps_table["extra"] if rng.random() < (0.15 if desktop else 0.05)]
    n_usr_bin = rng.randint(1300, 2600) if desktop else rng.randint(700, 1400)
    usr_bin_notable = [(rng.randrange(n_usr_bin), p.rsplit("/", 1)[1], {"caps": True}) for p in caps]
    usr_bin_notable += [(rng.randrange(n_usr_bin), p.rsplit("/", 1)[1], {"suid": True}) for p in usr_bin]
    host.ww_dirs = {
        "/usr/bin": DirListing(n_usr_bin, usr_bin_notable),
        "/bin": DirListing(n_usr_bin, list(usr_bin_notable)),
        "/usr/local/bin": DirListing(rng.randint(0, 25), []),
        "/etc": DirListing(rng.randint(60, 140), []),
        "/var": DirListing(rng.randint(0, 3), []),
    }
    profile = host.plan.profile
    if profile == "developer_laptop" and rng.random() < 0.12:
        _add_ww(rng, host, "/var/test_world_writable_file")
    if profile == "misconfigured_server":
        for path in rng.sample(cat.ROGUE_WORLD_WRITABLE, rng.randint(0, 3)):
            _add_ww(rng, host, path)
        if rng.random() < 0.35:
            _add_suid(rng, host, rng.choice(cat.ROGUE_SUID[:3]), world_writable=rng.random() < 0.3)


def _add_ww(rng: random.Random, host: Host, path: str, **extra) -> None:
    d, name = path.rsplit("/", 1)
    listings = [host.ww_dirs[d]] + ([host.ww_dirs["/bin"]] if d == "/usr/bin" else [])
    for listing in listings:
        if d != "/usr/bin":
            listing.count += 1
        listing.notable.append((rng.randrange(max(1, listing.count)), name, {"ww": True, **extra}))


def _add_suid(rng: random.Random, host: Host, path: str, shebang: str = "", world_writable: bool = False) -> None:
    d, name = path.rsplit("/", 1)
    inode = rng.randint(100_000, 9_000_000)
    roots = [d] + ({"/usr/bin": ["/bin"], "/usr/sbin": ["/sbin"]}.get(d, []))
    for root in roots:
        entries = host.suid_dirs[root]
        entries.insert(rng.randint(0, len(entries)), (f"{root}/{name}", inode))
    if d in host.ww_dirs:
        for root in [r for r in roots if r in host.ww_dirs]:
            listing = host.ww_dirs[root]
            listing.count += 1 if root == "/usr/local/bin" else 0
            listing.notable.append(
                (rng.randrange(max(1, listing.count)), name, {"suid": True, "shebang": shebang, "ww": world_writable})
            )


# -- mounts, units, audit, MAC, packages ---------------------------------------------------------------


def _mounts(rng: random.Random, host: Host) -> None:
    d = host.distro
    root_dev = {
        "ext4": "/dev/nvme0n1p2" if host.role == "laptop" else "/dev/sda1",
        "xfs": "/dev/mapper/rhel-root",
        "btrfs": "/dev/nvme0n1p3",
    }[d.rootfs]
    opts = {"ext4": "rw,relatime", "xfs": cat.XFS_OPTS, "btrfs": cat.BTRFS_OPTS.format(id=257, name="root")}[d.rootfs]
    mounts = [(root_dev, "/", d.rootfs, opts)] + list(cat.PSEUDO_MOUNTS)
    if host.efi:
        mounts.append(
            (
                "/dev/nvme0n1p1" if host.role == "laptop" else "/dev/sda15",
                "/boot/efi",
                "vfat",
                "rw,relatime,fmask=0077,dmask=0077,codepage=437,iocharset=iso8859-1,shortname=mixed,errors=remount-ro",
            )
        )
    separate_boot = d.os_id in ("fedora", "rhel") or rng.random() < 0.3
    if separate_boot:
        fs = "xfs" if d.os_id == "rhel" else "ext4"
        mounts.append(
            (
                "/dev/sda2" if host.role != "laptop" else "/dev/nvme0n1p2",
                "/boot",
                fs,
                cat.XFS_OPTS if fs == "xfs" else cat.EXT4_OPTS,
            )
        )
    if d.rootfs == "btrfs":
        mounts.append((root_dev, "/home", "btrfs", cat.BTRFS_OPTS.format(id=256, name="home")))
    elif rng.random() < (0.2 if host.role == "laptop" else 0.3):
        fs = "xfs" if d.os_id == "rhel" else "ext4"
        mounts.append(("/dev/mapper/vg0-home", "/home", fs, cat.XFS_OPTS if fs == "xfs" else cat.EXT4_OPTS))
    hardened = host.plan.profile == "hardened_server"
    if d.tmp_tmpfs:
        mounts.append(("tmpfs", "/tmp", "tmpfs", cat.TMPFS_TMP_OPTS))
    elif hardened and rng.random() < 0.7:
        mounts.append(("tmpfs", "/tmp", "tmpfs", cat.HARDENED_TMP_OPTS))
        if rng.random() < 0.6:
            mounts.append(
                (
                    "/dev/mapper/vg0-var_tmp",
                    "/var/tmp",
                    "xfs" if d.os_id == "rhel" else "ext4",
                    "rw,nosuid,nodev,noexec,relatime",
                )
            )
        if rng.random() < 0.5:
            mounts.append(
                (
                    "/dev/mapper/vg0-var",
                    "/var",
                    "xfs" if d.os_id == "rhel" else "ext4",
                    "rw,nodev,relatime" if rng.random() < 0.5 else "rw,nosuid,nodev,relatime",
                )
            )
    elif host.plan.profile == "misconfigured_server" and rng.random() < 0.3:
        mounts.append(("/dev/sdb1", "/tmp", "ext4", "rw,relatime"))
    if d.os_id == "ubuntu" and host.role in ("laptop", "workstation"):
        for i, snap in enumerate(
            rng.sample(
                [
                    "core22/1748",
                    "core24/888",
                    "firefox/6700",
                    "gnome-42-2204/202",
                    "gtk-common-themes/1535",
                    "snapd/24718",
                    "code/205",
                    "bare/5",
                ],
                5,
            )
        ):
            mounts.append(
                (f"/dev/loop{i}", f"/snap/{snap}", "squashfs", "ro,nodev,relatime,errors=continue,threads=single")
            )
        mounts.append(
            (
                "tmpfs",
                f"/run/user/{host.user_uid}",
                "tmpfs",
                f"rw,nosuid,nodev,relatime,size=1608228k,nr_inodes=402057,mode=700,uid={host.user_uid},"
                f"gid={host.user_uid},inode64",
            )
        )
        mounts.append(
            (
                "portal",
                f"/run/user/{host.user_uid}/doc",
                "fuse.portal",
                f"rw,nosuid,nodev,relatime,user_id={host.user_uid},group_id={host.user_uid}",
            )
        )
    if "containers" in host.tags:
        for c in host.containers[:6]:
            mounts.append(
                (
                    "overlay",
                    f"/var/lib/docker/overlay2/{c['id'][:40]}/merged",
                    "overlay",
                    "rw,relatime,lowerdir=/var/lib/docker/overlay2/l/A2B,upperdir=/var/lib/docker/overlay2/"
                    f"{c['id'][:40]}/diff,workdir=/var/lib/docker/overlay2/{c['id'][:40]}/work,nouserxattr",
                )
            )
    host.mounts = mounts


def _unit_applies(spec: str, host: Host, tags: bool) -> bool:
    if spec == "*":
        return True
    wanted = set(spec.split(","))
    if not tags:
        return host.distro.os_id in wanted
    have = set(host.tags) | {host.role} | ({"rhel"} if host.distro.os_id in ("rhel", "fedora") else set())
    return bool(wanted & have)


def _units(rng: random.Random, host: Host) -> None:
    files: dict[str, dict] = {}
    for name, template, distros, roles in cat.UNITS:
        if _unit_applies(distros, host, tags=False) and _unit_applies(roles, host, tags=True):
            keys = dict(cat.UNIT_TEMPLATES[template])
            if name.startswith("systemd-") and template.startswith("systemd") and rng.random() < 0.1:
                keys.pop(rng.choice(sorted(keys)), None) if keys else None
            files[name] = keys
    usr_lib = sorted(files.items())
    rng.shuffle(usr_lib)
    etc = []
    for alias, target, distros in cat.UNIT_ALIASES:
        if target in files and _unit_applies(distros, host, tags=False):
            etc.append((alias, files[target]))
    if host.plan.profile == "hardened_server" and rng.random() < 0.5:
        etc.append(("app.service", dict(cat.UNIT_TEMPLATES["systemd_strict"], ProtectHome="read-only")))
    if host.plan.profile in ("misconfigured_server",) and rng.random() < 0.5:
        etc.append((rng.choice(["legacy-app.service", "backup.service", "webapp.service"]), {}))
    rng.shuffle(etc)
    host.units = {"/etc/systemd/system": etc, "/usr/lib/systemd/system": usr_lib, "/lib/systemd/system": usr_lib}


def _audit(rng: random.Random, host: Host) -> None:
    os_id, profile = host.distro.os_id, host.plan.profile
    if os_id in ("rhel", "fedora"):
        host.audit_installed = True
        host.audit_rules = cat.AUDIT_RULE_SETS[
            "cis" if profile == "hardened_server" and rng.random() < 0.6 else "rhel_default"
        ]
    elif profile == "hardened_server" and rng.random() < 0.7:
        host.audit_installed = True
        host.audit_rules = cat.AUDIT_RULE_SETS[rng.choice(["cis", "stig"])]
    elif rng.random() < 0.08:
        host.audit_installed = True
        host.audit_rules = cat.AUDIT_RULE_SETS["ubuntu_sample"]


def _mac(rng: random.Random, host: Host) -> None:
    if host.distro.mac == "selinux":
        mode = "enforcing"
        if host.plan.profile in ("misconfigured_server", "compromised_host") and rng.random() < 0.4:
            mode = rng.choice(["permissive", "disabled"])
        # /etc/selinux/config's header comment holds "SELINUX= can take ...", which sys-scan reads first:
        # config_mode stays empty unless the file was rewritten without comments
        host.selinux = (
            None
            if mode == "disabled"
            else {"enforce": "1" if mode == "enforcing" else "0", "config_mode": mode if rng.random() < 0.1 else ""}
        )
        host.apparmor = False
    else:
        host.apparmor = not (host.plan.profile == "misconfigured_server" and rng.random() < 0.25)
        if not host.apparmor:
            for p in host.procs:
                p.label = ""
        elif rng.random() < 0.15:
            for p in rng.sample([p for p in host.procs if not p.kernel_thread], 2):
                p.label = f"{p.exe.split(' ')[0]} (complain)"


def _package_verification(rng: random.Random, host: Host) -> None:
    if host.distro.pkg_tool != "rpm":
        return  # dpkg -V lines start with '?': the 5.0.0 parser skips every one of them
    lines = rng.sample(cat.RPM_VERIFY_LINES, rng.randint(2, 8))
    if not host.as_root:
        lines += list(cat.RPM_NONROOT_LINES)
    host.pkg_verify_lines = lines


# -- what is wrong with a compromised machine ------------------------------------------------------


def _compromise(rng: random.Random, host: Host) -> None:
    exe, argv0, unit, unlinks = rng.choice(cat.MALWARE)
    in_home = exe.startswith("{home}")
    exe, argv0 = exe.format(home=host.home), argv0.format(home=host.home)
    injection = rng.choice(cat.INJECTIONS) if rng.random() < 0.45 else None
    if injection:  # the malware rewrites its process title (argv[0], all that sys-scan reports) as one string
        argv0 = f"{argv0} {injection}"
    uid = rng.choice([0, 0, 33, host.user_uid])
    uid = host.user_uid if in_home else uid
    deleted = rng.random() < unlinks
    pid = max(p.pid for p in host.procs) + rng.randint(50, 5000)
    env_first = "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libprocesshider.so" if rng.random() < 0.25 else ""
    host.procs.append(
        Proc(
            pid,
            1,
            uid,
            uid,
            argv0,
            exe + (" (deleted)" if deleted else ""),
            exe.rsplit("/", 1)[-1][:15],
            env_first=env_first,
        )
    )
    host.malware = {"exe": exe, "argv0": argv0, "pid": pid, "injection": injection, "unit": unit}
    if rng.random() < 0.5:  # persistence unit in /etc/systemd/system
        host.units["/etc/systemd/system"] = host.units["/etc/systemd/system"] + [(unit, {})]
    if rng.random() < 0.5:  # a SUID backdoor, sometimes left writable by everyone (chmod 4777)
        _add_suid(rng, host, rng.choice(cat.ROGUE_SUID), world_writable=rng.random() < 0.4)
    if rng.random() < 0.4:
        _add_ww(rng, host, rng.choice(cat.ROGUE_WORLD_WRITABLE))
    if rng.random() < 0.3:
        name = rng.choice(cat.MASQUERADING_MODULES)
        host.modules.insert(0, name)
        host.module_paths[name] = ""
        if rng.random() < 0.5:
            host.hidden_sysfs.add(name)
        host.tainted |= 4096 | 8192
    if rng.random() < 0.6:  # a copy of the miner dropped where the pseudo-YARA scanner reads
        host.yara_files.append((f"/usr/local/bin/{exe.rsplit('/', 1)[-1]}", "stratum+tcp://pool.minexmr.example:4444"))
    if host.distro.pkg_tool == "rpm" and rng.random() < 0.6:
        path = rng.choice(cat.RPM_TAMPERED_BINARIES)
        host.pkg_verify_lines.append(f"S.5....T.    {path}")
    if rng.random() < 0.3:
        host.sysctl["kernel/kptr_restrict"] = "0"


def _rules(rng: random.Random, host: Host) -> None:
    if not host.options.has("--rules-enable"):
        return
    host.rules_mitre = [("id", "/tmp", "high", "T1074.001"), ("command", "xmrig", "critical", "T1496")]
    host.yara_patterns = list(cat.YARA_PATTERNS)
