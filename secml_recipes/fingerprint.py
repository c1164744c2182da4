"""Content fingerprints of files and folders: what the pipeline compares to decide whether a stage's output is up to
date, and what names a cached conversion of a model folder.

A stage's code is fingerprinted by what it runs, not by the whole package: `code_files` follows the import graph
from the stage's entry module, and `fingerprint_input` reads Python by its AST without docstrings and YAML by its
parsed value, so editing a comment or a docstring (or a recipe's header comment) changes no fingerprint and
reruns nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


def fingerprint_path(path: Path) -> str:
    """Content hash of a file, or of a folder's files: small files whole, large ones (weights, archives) by name,
    size and their first and last MiB, which differ whenever training changed a weight near either end. A folder's
    `checkpoint-*` subfolders are left out, judged relative to the folder, so a checkpoint folder itself is hashed."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            parts = p.relative_to(path).parts
            skip = (
                ".secml_stage.json" in p.name
                or "__pycache__" in parts
                or any(q.startswith("checkpoint-") for q in parts)
            )
            if p.is_file() and not skip:
                size = p.stat().st_size
                h.update(f"{p.relative_to(path)}:{size}".encode())
                h.update(p.read_bytes() if size < _WHOLE else _ends(p))
    return h.hexdigest()


_WHOLE = 1_000_000  # files below this are hashed whole
_END = 1 << 20


def _ends(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(_END)
        fh.seek(-_END, 2)
        return head + fh.read(_END)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def fingerprint_source(path: Path) -> str:
    """Hash of what a Python file does: its AST without docstrings, positions or comments (bytes if it won't parse)."""
    text = path.read_bytes()
    try:
        tree = _strip_docstrings(ast.parse(text))
    except (SyntaxError, ValueError):
        return hashlib.sha256(text).hexdigest()
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()


def fingerprint_input(path: Path) -> str:
    """A stage input's hash: Python by AST (`fingerprint_source`), YAML by its parsed value, the rest by content."""
    if path.is_file() and path.suffix == ".py":
        return fingerprint_source(path)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        try:
            value = yaml.safe_load(path.read_text(encoding="utf-8"))
            return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        except (yaml.YAMLError, UnicodeDecodeError):
            pass
    return fingerprint_path(path)


def module_file(name: str, root: Path) -> Path | None:
    """The file of module `name` under `root` (a repository or site-packages), or None when it has none there."""
    base = root.joinpath(*name.split("."))
    for path in (base.parent / f"{base.name}.py", base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_imports(name: str, path: Path, known, strings: bool = False) -> set[str]:
    """The modules `name` (at `path`) imports, at any depth of the file, that `known(module)` accepts.

    With `strings`, a string constant that is exactly a module's dotted name counts too: `-m` subprocess commands and
    `importlib.resources.files("pkg")` run or read that module without an import statement (docstrings, which only
    name modules, do not count)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(_strip_docstrings(tree) if strings else tree):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.match(node.value):
            candidates = [node.value]
        else:
            continue
        targets |= {c for c in candidates if c != name and known(c)}
    return targets


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Every module of `package` (a folder) -> the modules of that package it imports, at any depth of the file."""
    root = package.parent
    modules = {_module_name(p, root): p for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = module_imports(name, path, modules.__contains__)
        # a package's own parents are imported by Python anyway; they are not edges of ours
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def module_closure(entries: Iterable[str], root: Path) -> dict[str, Path]:
    """The modules under `root` that running `entries` can execute: their imports (and modules named as strings),
    followed to the end, with the parent packages Python runs on the way. Module name -> file."""
    found: dict[str, Path] = {}
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = module_file(name, root)
        if path is None:
            continue
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += module_imports(name, path, lambda m: module_file(m, root) is not None, strings=True)
    return found


def code_files(entries: Iterable[str], root: Path) -> list[Path]:
    """The files a stage's code consists of: `module_closure` plus the data files beside those modules (templates,
    schemas, model configs: the non-Python files in their folders and in data folders below them that are no
    package of their own)."""
    files = set(module_closure(entries, root).values())
    for folder in {p.parent for p in files}:
        for p in folder.iterdir():
            if p.is_file() and p.suffix not in (".py", ".pyc"):
                files.add(p)
            elif p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists():
                files |= {q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts}
    return sorted(files)


def code_fingerprints(entries: Iterable[str], root: Path) -> dict[str, str]:
    """Relative path -> `fingerprint_input` of every file of `code_files`: the code part of a stage's inputs."""
    return {str(p.relative_to(root)): fingerprint_input(p) for p in code_files(entries, root)}
