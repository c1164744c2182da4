"""Old module paths (before the stage layout) keep working for one release: `import secml_recipes.data.split`,
`python -m secml_recipes.evaluate RECIPE`. The table is `moved_modules.yaml`; this finder answers only the names in
it, with the module that lives at the new path (one module object, not a copy), and warns once per old name.

Stdlib only, and the table is read without a YAML library: the Makefile imports the package with the system Python
before the virtual environment exists.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from pathlib import Path

TABLE = Path(__file__).with_name("moved_modules.yaml")
PREFIX = "secml_recipes."


def moved_modules() -> dict[str, str]:
    """{old dotted name: new dotted name}, both with the package prefix."""
    table = {}
    try:
        text = TABLE.read_text(encoding="utf-8")
    except OSError:  # a build without the table: only the new paths exist
        return table
    for line in text.splitlines():
        if line.startswith("  ") and ":" in line and not line.lstrip().startswith("#"):
            old, new = (part.strip() for part in line.split(":", 1))
            table[PREFIX + old] = PREFIX + new
    return table


def new_name(old: str, table: dict[str, str]) -> str | None:
    """Where an old module now lives: the longest moved prefix, with the rest of the path kept."""
    for prefix in sorted(table, key=len, reverse=True):
        if old == prefix or old.startswith(prefix + "."):
            return table[prefix] + old[len(prefix) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):  # the target module ran when it was imported
        # importlib has just set the alias's spec on the shared module object; the module keeps its own, or
        # importlib.resources would read the package's data files through this loader, which has none
        module.__spec__ = self.own_spec

    def get_code(self, fullname):  # `python -m OLD` runs the new module's code as __main__
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)

    def is_package(self, fullname):
        spec = importlib.util.find_spec(self.target)
        return spec.submodule_search_locations is not None


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self._table: dict[str, str] | None = None

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(PREFIX):
            return None
        if self._table is None:
            self._table = moved_modules()
        new = new_name(fullname, self._table)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} moved to {new}; the old path works until the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        target_spec = importlib.util.find_spec(new)
        if target_spec is None:
            return None
        spec = importlib.util.spec_from_loader(
            fullname, _AliasLoader(new), is_package=target_spec.submodule_search_locations is not None
        )
        if target_spec.submodule_search_locations is not None:
            spec.submodule_search_locations = list(target_spec.submodule_search_locations)
        return spec


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
