"""The package's layers: imports only go down, and only the Dagster layers import Dagster.

Read from the sources' import statements (top-level and inside functions), so a lazy import
counts as much as any other.
"""

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import tabs_assets

PACKAGE_DIR = Path(tabs_assets.__file__).parent
# Lowest first; a folder (or top-level module) may import its own layer and those below.
LAYERS = (
    {"files", "locks", "settings"},
    {"config"},
    {"science"},
    {"store"},
    {"graph"},
    {"registry"},
    {"ui"},
    {"tracking"},
    {"defs"},
    {"cli"},
)
DAGSTER_LAYERS = {"defs", "cli"}


def _part(module: str) -> str:
    """The folder (or top-level module) of a dotted module name inside the package."""
    return module.split(".")[1]


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        yield ".".join(parts).removesuffix(".__init__"), ast.parse(path.read_text())


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module  # and each name, which may be a module (from pkg import module)
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _layer(part: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if part in layer)


def test_every_folder_has_a_layer() -> None:
    parts = {_part(module) for module, _ in _modules() if module != "tabs_assets"}
    assert parts == set().union(*LAYERS)


def test_imports_only_go_down() -> None:
    upward = []
    for module, tree in _modules():
        if module == "tabs_assets":
            continue
        source = _part(module)
        for target in _imports(tree):
            if target.startswith("tabs_assets.") and _layer(_part(target)) > _layer(source):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_only_the_dagster_layers_import_dagster() -> None:
    found = [
        f"{module} imports {target}"
        for module, tree in _modules()
        if module != "tabs_assets" and _part(module) not in DAGSTER_LAYERS
        for target in _imports(tree)
        if target.split(".")[0] in {"dagster", "dagster_celery", "dagster_graphql"}
    ]
    assert found == []


def test_no_module_imports_itself_through_others() -> None:
    """No cycle among the package's modules, lazy imports included (graphlib finds one)."""
    modules = dict(_modules())
    graph = {
        module: {
            target
            for target in _imports(tree)
            if target in modules and target != module and not module.startswith(f"{target}.")
        }
        for module, tree in modules.items()
    }
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle
