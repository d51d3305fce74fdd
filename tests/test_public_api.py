"""The public surface: each package's ``__all__`` equals its public names, sorted, all real."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.resources
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import keepwell
import keepwell.registry
import keepwell.store

PACKAGES = [keepwell, keepwell.registry, keepwell.store]
SRC = Path(keepwell.__file__).resolve().parent


def public_names(module: ModuleType) -> set[str]:
    """Names bound in the module that are public: not private, not modules, not ``annotations``."""
    names = {
        name for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and value is not annotations  # the __future__ feature, bound here by the import too
    }
    if "__version__" in vars(module):
        names.add("__version__")
    return names


def names_bound_in_source(module: ModuleType) -> set[str]:
    """Names an ``__init__.py`` binds at top level (imports and assignments), read from source."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return {n for n in names if not n.startswith("_") or n == "__version__"} - {"__all__"}


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_is_sorted_without_duplicates(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_all_equals_the_public_names(module: ModuleType) -> None:
    assert set(module.__all__) == public_names(module)
    assert set(module.__all__) == names_bound_in_source(module)


@pytest.mark.parametrize("module", PACKAGES, ids=lambda m: m.__name__)
def test_every_exported_name_resolves(module: ModuleType) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)
    for name in module.__all__:
        assert getattr(module, name) is not None
        assert namespace[name] is getattr(module, name)


def test_keepwell_exports_are_the_subpackages_objects() -> None:
    assert keepwell.Registry is keepwell.registry.Registry
    assert keepwell.ReferenceProfile is keepwell.registry.ReferenceProfile
    assert keepwell.Signature is keepwell.registry.Signature
    assert keepwell.connect.__module__ == "keepwell.workspace"


def submodules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(keepwell.__path__, "keepwell.")
        if ".migrations" not in info.name
    )


@pytest.mark.parametrize("name", submodules())
def test_every_module_all_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported))
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_version_matches_the_installed_distribution() -> None:
    assert keepwell.__version__ == importlib.metadata.version("keepwell")


def test_package_ships_py_typed() -> None:
    assert importlib.resources.files("keepwell").joinpath("py.typed").is_file()
    assert (SRC / "py.typed").is_file()
