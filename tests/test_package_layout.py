"""The package reads as the pipeline: imports point down the stage stack only, no module imports itself back through
another, and docs/layout.md names every folder and top-level module there is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secml_recipes import fingerprint

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "secml_recipes"

# The stack, bottom first: a module may import from its own layer and the layers below it, never above.
LAYERS = [
    {"layout", "versions", "atomic", "disk_check", "env_errors", "hub", "plotting", "run_lock", "model_folders",
     "fingerprint", "_moved", "command_help", "model_config", "knowledge_files"},
    {"scan"},
    {"judge"},  # below the teacher, so it cannot import the tables it judges
    {"teacher"},
    {"families"},
    {"tasks"},
    {"corpus"},
    {"train"},
    {"deploy"},
    {"use"},
    {"evaluation"},
    {"pipeline", "cli", "sft", "__main__"},
]  # fmt: skip


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(
        f"{module}: its folder {top!r} has no place in the stack (add it to LAYERS and docs/layout.md)"
    )


def import_graph() -> dict[str, set[str]]:
    """Every secml_recipes module -> the secml_recipes modules it imports (the pipeline's stage fingerprints follow
    the same graph)."""
    return fingerprint.import_graph(PACKAGE)


def test_every_import_points_down_the_stack():
    upward = [
        f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if module != "secml_recipes" and target != "secml_recipes" and _layer(target) > _layer(module)
    ]
    assert not upward, "imports that point up the stack:\n" + "\n".join(upward)


def test_no_import_cycles():
    # Importing a.b.c runs a/b/__init__.py first: a package's __init__ is part of every import of its modules
    # (except from inside that package), so a cycle through an __init__ counts too.
    direct = import_graph()
    graph = {
        module: targets
        | {
            ancestor
            for target in targets
            for ancestor in (target.rsplit(".", k)[0] for k in range(1, target.count(".")))
            if ancestor in direct and ancestor != module and not module.startswith(ancestor + ".")
        }
        for module, targets in direct.items()
    }
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_docs_layout_names_every_folder_and_top_level_module():
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    tree = text.split("```text", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"^  ([\w.]+/?)\s", tree, flags=re.M))  # the package's entries, indented under it
    present = {p.name + "/" for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    present |= {p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    missing, stale = sorted(present - named), sorted(named - present)
    assert not missing, f"docs/layout.md does not name: {missing}"
    assert not stale, f"docs/layout.md names what is not in the package: {stale}"


@pytest.mark.parametrize("old, new", [("secml_recipes.data.split", "secml_recipes.tasks.split"),
                                      ("secml_recipes.data.sysscan.v5_0_0", "secml_recipes.scan.v5_0_0"),
                                      ("secml_recipes.evaluate", "secml_recipes.evaluation.evaluate")])  # fmt: skip
def test_old_module_paths_are_the_new_modules_for_one_release(old, new):
    import importlib
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        old_module = importlib.import_module(old)
    assert old_module is importlib.import_module(new)
    assert any("moved to" in str(w.message) for w in seen)


def test_every_data_file_of_the_package_ships_in_the_wheel():
    """A YAML table, template or schema left out of package-data works in a clone and breaks in every install."""
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["secml_recipes"]
    data = [p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    unshipped = [str(p.relative_to(PACKAGE)) for p in data if not any(p.relative_to(PACKAGE).match(g) for g in globs)]
    assert not unshipped, f"add these to [tool.setuptools.package-data] in pyproject.toml: {unshipped}"
