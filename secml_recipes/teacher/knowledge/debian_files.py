"""What Debian's own packages really ship: path -> package, read from the .deb files themselves.

The hand-written package table (`packages.yaml`) names the packages the teacher reasons about; this file list
fills in every other path those packages own, so the simulated `dpkg -S` never calls `/etc/crontab`,
`/usr/bin/find` or a stock unit file "owned by no package". Files a package's maintainer script copies into
place (base-files installs /etc/profile from /usr/share/base-files/profile) are listed apart: `dpkg -S` does
not know them, but the package that put them there does.

Regenerate (needs apt-get and dpkg-deb, a Debian or Ubuntu machine, network access to its archive):

    python -m secml_recipes.teacher.knowledge.debian_files --regenerate

It downloads the packages named under `packages:` in the data file, lists them with `dpkg-deb -c` and reads
their postinst for `install_from_default SOURCE DEST`, then rewrites the data file in place.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

import yaml

from secml_recipes.knowledge_files import STR, load_table, mapping, record, seq

DATA_FILE = "data/debian_files.yaml"
_DATA = load_table(
    __package__,
    DATA_FILE,
    record(
        {
            "release": STR,
            "packages": seq(STR),
            "versions": mapping(STR),
            "files": mapping(STR),
            "installed_by_scripts": mapping(record({"package": STR, "source": STR})),
        }
    ),
)
RELEASE: str = _DATA["release"]
VERSIONS: dict[str, str] = _DATA["versions"]
FILES: dict[str, str] = _DATA["files"]  # merged-/usr path -> package
INSTALLED_BY_SCRIPTS: dict[str, dict] = _DATA["installed_by_scripts"]  # path -> package, the file it copies


def script_source(path: str) -> dict | None:
    """{package, source} when a maintainer script, not dpkg, installed `path` (so `dpkg -S` cannot name it)."""
    return INSTALLED_BY_SCRIPTS.get(path)


# Paths no analyst asks the package manager about: documentation, translations, shell completions.
SKIPPED = re.compile(r"^/usr/share/(doc|man|locale|info|lintian|bug|bash-completion|zsh|fish)/")
_SCRIPT_COPY = re.compile(r"^\s*install_from_default\s+(\S+)\s+(\S+)", re.M)


def merged(path: str) -> str:
    """The path as a merged-/usr host shows it (Debian 12's packages still ship /bin, /sbin, /lib)."""
    for old in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if path.startswith(old):
            return "/usr" + path
    return path


def package_files(deb: Path) -> list[str]:
    """The regular files and links a .deb installs, as merged-/usr paths (directories left out)."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    out = []
    for line in listing.splitlines():
        if line.startswith("d"):
            continue
        path = line.split(" ./", 1)[1].split(" -> ", 1)[0] if " ./" in line else ""
        path = merged("/" + path)
        if path != "/" and not SKIPPED.match(path):
            out.append(path)
    return out


def script_copies(deb: Path, package: str) -> dict[str, dict]:
    """Files the package's postinst copies into place (`install_from_default SOURCE DEST`, base-files)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-e", str(deb), tmp], check=True, capture_output=True)
        postinst = Path(tmp, "postinst")
        text = postinst.read_text(encoding="utf-8", errors="replace") if postinst.exists() else ""
    return {
        dest: {"package": package, "source": f"/usr/share/{package}/{source}"}
        for source, dest in _SCRIPT_COPY.findall(text)
    }


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True, text=True).stdout.strip()


def regenerate(packages: list[str], release: str, download_dir: Path | None = None) -> dict:
    """The data file's content from the real packages (downloaded with `apt-get download` unless
    `download_dir` already holds their .deb files)."""
    with tempfile.TemporaryDirectory() as tmp:
        where = download_dir or Path(tmp)
        if download_dir is None:
            subprocess.run(["apt-get", "download", *packages], check=True, cwd=where)
        versions, owned, copies = {}, {}, {}
        for package in packages:
            debs = sorted(where.glob(f"{package}_*.deb"))
            if not debs:
                raise FileNotFoundError(f"no {package}_*.deb in {where}: apt-get download {package} failed")
            versions[package] = _field(debs[-1], "Version")
            for path in package_files(debs[-1]):
                owned.setdefault(path, package)
            copies.update(script_copies(debs[-1], package))
    return {
        "release": release,
        "packages": packages,
        "versions": versions,
        "files": dict(sorted(owned.items())),
        "installed_by_scripts": dict(sorted(copies.items())),
    }


HEADER = """\
# What Debian's packages really ship: merged-/usr path -> package, and the files a package's maintainer script
# copies into place (dpkg -S does not list those).
# Source: the packages' own .deb files from the release's archive (apt-get download), listed with dpkg-deb -c,
# their postinst read for install_from_default.
# To edit: do not edit by hand; add a package to `packages:` and regenerate:
#     python -m secml_recipes.teacher.knowledge.debian_files --regenerate
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regenerate", action="store_true", help="download the packages and rewrite the file")
    parser.add_argument("--debs", type=Path, help="a folder that already holds the .deb files")
    parser.add_argument("--release", default=RELEASE, help=f"the release the packages come from ({RELEASE})")
    args = parser.parse_args(argv)
    if not args.regenerate:
        print(f"{len(FILES)} paths from {len(VERSIONS)} {RELEASE} packages; --regenerate rewrites them")
        return
    content = regenerate(list(_DATA["packages"]), args.release, args.debs)
    target = Path(str(files(__package__).joinpath(DATA_FILE)))
    target.write_text(HEADER + yaml.safe_dump(content, sort_keys=False, width=120), encoding="utf-8")
    print(f"wrote {target}: {len(content['files'])} paths from {len(content['packages'])} packages")


if __name__ == "__main__":
    main()
