"""Which code a result runs, and its digest, read from the package's syntax trees.

A *definition* is a module's top-level function, class or assigned name. Its code is its syntax
tree without docstrings, comments, positions or the paths of the package's own imports: a
comment, a docstring or a moved file changes no digest. From a result's root definitions the
names each definition uses are followed through the package's imports to the definitions they
name; the digest is sha256 over the sorted codes of everything reached, so it follows the code
the result runs and nothing else (an unused new class changes nothing).

Names are followed statically: code reached only through ``getattr`` or a string would be
missed, so the package dispatches through dictionaries and direct references. Code that only
some configs run (one explainer's search) can be declared *selectable*: it is left out unless
the config selects it, so editing one explainer keeps the others' results. A selection left
undeclared is simply followed for every config: a key can be too sensitive, never stale.
Function signatures' annotations are not followed (they do not run); a root's decorators are
not either (they register the compute function with Dagster, they do not shape its result).
"""

import ast
import copy
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tabs_assets.files import write_file_durably

PACKAGE = "tabs_assets"
# The key machinery itself is not followed: what it does to a result is in the key already (the
# slice, the upstream keys), and its tables name modules by path (a move would change them).
OPAQUE_MODULES = frozenset({f"{PACKAGE}.graph.nodes", f"{PACKAGE}.graph.code"})
PACKAGE_DIR = Path(__file__).resolve().parents[1]

# Parsing every source file costs a quarter of a second at each start: each file's definitions
# are kept on disk, keyed by its size and modification time (a file modified within the last
# RACY_S seconds may change again unseen by its timestamp, so it is not kept).
INDEX_FILE = "__pycache__/tabs_assets_code_index.json"
INDEX_VERSION = 2
RACY_S = 2.0


@dataclass(frozen=True)
class Definition:
    code: str  # sha256 of the normalised syntax tree
    bare_code: str  # the same without decorators: how a root counts
    uses: tuple[str, ...]  # dotted names it uses ("tabs_assets.science.losses.pick")
    decorator_uses: tuple[str, ...]


@dataclass(frozen=True)
class Module:
    definitions: dict[str, Definition]
    imports: dict[str, str]  # top-level name -> dotted target inside the package
    prelude: Definition  # top-level statements that are neither definitions nor imports


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [s for s in body if not _is_docstring(s)] or [ast.Pass()]  # type: ignore[attr-defined]


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(statements: Iterable[ast.AST], module: str, is_package: bool) -> dict[str, str]:
    """Local name -> dotted target, for the package's own imports among ``statements``."""
    bound: dict[str, str] = {}
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else PACKAGE
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            if source.split(".")[0] == PACKAGE:
                for alias in node.names:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return bound


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything that is not a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


class _Uses(ast.NodeVisitor):
    """The dotted names a definition uses, resolved through its module's and its own imports."""

    def __init__(self, module: str, names: set[str], imports: dict[str, str]) -> None:
        self.module, self.names, self.imports = module, names, imports
        self.found: set[str] = set()

    def _resolve(self, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if head in self.imports:
            self.found.add(".".join([self.imports[head], *rest]))
        elif head in self.names:
            self.found.add(f"{self.module}.{head}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = _dotted(node)
        if parts is None:
            self.generic_visit(node)
        else:
            self._resolve(parts)

    def visit_Name(self, node: ast.Name) -> None:
        self._resolve([node.id])

    def visit_arg(self, node: ast.arg) -> None:  # a signature's annotation does not run
        return

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:  # nor a field's, given its value
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (node.args, *node.body, *node.decorator_list):
            self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef


class _WithoutOwnImports(ast.NodeTransformer):
    """Drop the package's own import statements: what they bind is followed as uses, and their
    module paths and order must not change a digest (a file move, an import sorter)."""

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        kept = [alias for alias in node.names if alias.name.split(".")[0] != PACKAGE]
        return ast.Import(names=kept) if kept else None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        own = node.level or (node.module or "").split(".")[0] == PACKAGE
        return None if own else node


def _normalised(node: ast.AST) -> ast.AST:
    return _WithoutOwnImports().visit(copy.deepcopy(node)) or ast.Pass()


def _digest(nodes: Iterable[ast.AST]) -> str:
    text = "\n".join(ast.dump(_normalised(node), include_attributes=False) for node in nodes)
    return hashlib.sha256(text.encode()).hexdigest()


def _definition(
    statements: list[ast.stmt],
    module: str,
    names: set[str],
    imports: dict[str, str],
    is_package: bool,
) -> Definition:
    local = imports | _imports((n for s in statements for n in ast.walk(s)), module, is_package)
    uses, decorator_uses = _Uses(module, names, local), _Uses(module, names, local)
    bare: list[ast.AST] = []
    for statement in statements:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for decorator in statement.decorator_list:
                decorator_uses.visit(decorator)
            stripped = type(statement)(**{**vars(statement), "decorator_list": []})
            uses.visit(stripped)
            bare.append(stripped)
        else:
            uses.visit(statement)
            bare.append(statement)
    return Definition(
        code=_digest(statements),
        bare_code=_digest(bare),
        uses=tuple(sorted(uses.found)),
        decorator_uses=tuple(sorted(decorator_uses.found - uses.found)),
    )


def _assigned_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
        targets = [statement.target]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def read_module(source: bytes, module: str, is_package: bool) -> Module:
    """The definitions of one module's source."""
    tree = ast.parse(source)
    _strip_docstrings(tree)
    grouped: dict[str, list[ast.stmt]] = {}
    prelude: list[ast.stmt] = []
    top_imports: list[ast.stmt] = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            grouped.setdefault(statement.name, []).append(statement)
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            top_imports.append(statement)
        elif names := _assigned_names(statement):
            for name in names:
                grouped.setdefault(name, []).append(statement)
        elif not isinstance(statement, ast.Pass):
            prelude.append(statement)
    imports = _imports(
        (n for s in [*top_imports, *prelude] for n in ast.walk(s)), module, is_package
    )
    names = set(grouped)
    return Module(
        definitions={
            name: _definition(statements, module, names, imports, is_package)
            for name, statements in grouped.items()
        },
        imports=imports,
        prelude=_definition(prelude, module, names, imports, is_package),
    )


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join([PACKAGE, *parts[:-1]] if is_package else [PACKAGE, *parts]), is_package


def _encode(module: Module) -> dict[str, Any]:
    return {
        "definitions": {name: vars(d) for name, d in module.definitions.items()},
        "imports": module.imports,
        "prelude": vars(module.prelude),
    }


def _decode(data: dict[str, Any]) -> Module:
    def definition(d: dict[str, Any]) -> Definition:
        return Definition(d["code"], d["bare_code"], tuple(d["uses"]), tuple(d["decorator_uses"]))

    return Module(
        definitions={n: definition(d) for n, d in data["definitions"].items()},
        imports=data["imports"],
        prelude=definition(data["prelude"]),
    )


@cache
def package_index(root: Path = PACKAGE_DIR) -> dict[str, Module]:
    """Every module of the package under ``root``, by dotted name (cached per process and on
    disk, see INDEX_FILE)."""
    cache_file = root / INDEX_FILE
    try:
        remembered = json.loads(cache_file.read_text())
        if remembered.get("version") != INDEX_VERSION:
            remembered = {}
    except (OSError, ValueError, AttributeError):
        remembered = {}
    files = remembered.get("files", {})
    kept: dict[str, Any] = {}
    index: dict[str, Module] = {}
    now = time.time()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(root).as_posix()
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        name, is_package = _module_name(path, root)
        known = files.get(relative)
        if known and known["stat"] == signature:
            index[name] = _decode(known["module"])
        else:
            index[name] = read_module(path.read_bytes(), name, is_package)
        if now - stat.st_mtime > RACY_S:
            kept[relative] = {"stat": signature, "module": _encode(index[name])}
    if kept != files:
        with suppress(OSError):  # a read-only checkout: parsed again next time
            cache_file.parent.mkdir(exist_ok=True)
            payload = json.dumps({"version": INDEX_VERSION, "files": kept})
            write_file_durably(cache_file, payload, durable=False)
    return index


def _definition_id(dotted: str, index: dict[str, Module], depth: int = 0) -> str | None:
    """``module:name`` of the definition a dotted name refers to (through re-exports)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in index:
            name = parts[cut]
            if name in index[module].definitions:
                return f"{module}:{name}"
            target = index[module].imports.get(name)
            if target and depth < 8:
                return _definition_id(target, index, depth + 1)
            return None
    return None


def _parse_id(definition_id: str) -> tuple[str, str]:
    module, _, name = definition_id.partition(":")
    return module, name


def reached(
    roots: Iterable[str], excluded: Iterable[str] = (), root: Path = PACKAGE_DIR
) -> Iterator[tuple[str, str]]:
    """(definition id, code) of every definition reached from ``roots`` (``module:name``),
    never entering ``excluded``. Raises KeyError naming a root that does not exist."""
    index = package_index(root)
    skip = set(excluded)
    pending: list[tuple[str, bool]] = []
    for root_id in roots:
        module, name = _parse_id(root_id)
        if module not in index or name not in index[module].definitions:
            raise KeyError(f"no definition {root_id!r} in the package: update the graph's roots")
        pending.append((root_id, True))
    seen: set[str] = set()
    preludes: set[str] = set()
    while pending:
        definition_id, is_root = pending.pop()
        if definition_id in seen or definition_id in skip:
            continue
        seen.add(definition_id)
        module, name = _parse_id(definition_id)
        definition = index[module].definitions[name]
        yield definition_id, definition.bare_code if is_root else definition.code
        uses = definition.uses if is_root else definition.uses + definition.decorator_uses
        if module not in preludes:
            preludes.add(module)
            prelude = index[module].prelude
            yield f"{module}:<prelude>", prelude.code
            uses += prelude.uses
        for dotted in uses:
            target = _definition_id(dotted, index)
            if target is not None and _parse_id(target)[0] not in OPAQUE_MODULES:
                pending.append((target, False))


@cache
def code_digest(
    roots: tuple[str, ...], excluded: frozenset[str] = frozenset(), root: Path = PACKAGE_DIR
) -> str:
    """sha256 over the code ``roots`` run (see the module docstring)."""
    codes = sorted(code for _, code in reached(roots, excluded, root))
    return hashlib.sha256("\n".join(codes).encode()).hexdigest()
