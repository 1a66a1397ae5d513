"""Reading config and study YAML files within bounds: every input is rejected within seconds,
whatever its size or shape; a study file holds only ``study:``."""

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tabs_assets.config.errors import ConfigError

# Bounds on what the validator reads: every input is rejected within seconds, whatever its size
# or shape (README, "Limits"). A real config is a few KB, 6 levels deep, with no aliases.
MAX_YAML_BYTES = 1_000_000
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000  # after expanding aliases (billion laughs)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(yaml.YAMLError):
    """A YAML document over one of the bounds above, or with a duplicate key."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with bounded depth, aliases and expanded size, no duplicate keys, and YAML 1.2
    floats (``1e-3`` is a number, not the string YAML 1.1 makes of it)."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.name = name
        self._depth = 0
        self._aliases = 0
        self._open_anchors: set[str] = set()

    def _where(self, mark: Any) -> str:
        return f"{self.name}, line {mark.line + 1}"

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlLimitError(
                    f"{self._where(event.start_mark)}: alias *{event.anchor} refers to its own "
                    f"anchor (a recursive structure)"
                )
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YamlLimitError(
                    f"{self._where(event.start_mark)}: more than {MAX_YAML_ALIASES} aliases"
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise YamlLimitError(
                f"{self._where(event.start_mark)}: nested more than {MAX_YAML_DEPTH} levels deep"
            )
        anchor = getattr(event, "anchor", None)
        if anchor:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)

    def construct_document(self, node: Any) -> Any:
        self._check_expanded(node)
        return super().construct_document(node)

    def _check_expanded(self, root: Any) -> None:
        """Size and depth with every alias expanded: bounds what later code walks."""
        memo: dict[int, tuple[int, int]] = {}

        def measure(node: Any) -> tuple[int, int]:
            if id(node) in memo:  # an anchor is measured before its aliases (document order)
                return memo[id(node)]
            size, height = 1, 1
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            for child in children:
                child_size, child_height = measure(child)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_YAML_NODES:
                    raise YamlLimitError(
                        f"{self._where(node.start_mark)}: more than {MAX_YAML_NODES} values "
                        f"once aliases are expanded"
                    )
                if height > MAX_YAML_DEPTH:
                    raise YamlLimitError(
                        f"{self._where(node.start_mark)}: nested more than {MAX_YAML_DEPTH} "
                        f"levels deep once aliases are expanded"
                    )
            memo[id(node)] = (size, height)
            return size, height

        measure(root)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise YamlLimitError(
                        f"{self.name}, line {line}: duplicate key {key_node.value!r} "
                        f"(first at line {seen[key_node.value]})"
                    )
                seen[key_node.value] = line
        return super().construct_mapping(node, deep)


BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml_text(text: str, name: str) -> Any:
    """Parse YAML text with BoundedLoader; errors are yaml.YAMLError."""
    loader = BoundedLoader(text, name)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def non_finite_problems(data: Any, prefix: str = "") -> list[str]:
    """``dotted.path: ...`` for every inf or NaN in parsed YAML (``.inf``, ``.nan``)."""
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{prefix or '<root>'}: {data} is not a finite number"]
    if isinstance(data, Mapping):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return []
    return [
        problem
        for key, value in items
        for problem in non_finite_problems(value, f"{prefix}.{key}" if prefix else str(key))
    ]


STUDY_FILE_KEY = "study"
"""The top-level key that makes a file a study file."""


def study_file_problems(data: Mapping[str, Any], where: str) -> list[str]:
    """A study file holds only ``study:``: config keys beside it would be silently ignored."""
    if STUDY_FILE_KEY not in data or len(data) == 1:
        return []
    extra = ", ".join(str(key) for key in data if key != STUDY_FILE_KEY)
    return [
        f"{where}: a study file holds only the top-level key '{STUDY_FILE_KEY}', but it also "
        f"has {extra}; put config values in the study's base config file(s) (study.base) or, "
        f"as dotted keys, in study.set or study.sweep"
    ]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, with errors that name the file (bounded: see above)."""
    path = Path(path)
    where = str(path.absolute())
    try:
        if not path.exists():
            raise ConfigError(str(path), [f"{where}: file not found"])
        if not path.is_file():
            raise ConfigError(str(path), [f"{where}: not a regular file"])
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                str(path), [f"{where}: {size} bytes; a config file may have {MAX_YAML_BYTES}"]
            )
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(str(path), [f"{where}: cannot read: {error.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), [f"{where}: not UTF-8 text (byte {error.start})"]) from None
    try:
        data = load_yaml_text(text, where)
    except YamlLimitError as error:
        raise ConfigError(str(path), [str(error)]) from None
    except (yaml.YAMLError, RecursionError) as error:
        raise ConfigError(str(path), [f"{where}: not valid YAML: {error}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"{where}: the top level must be a mapping of config keys"])
    problems = study_file_problems(data, where) or non_finite_problems(data)
    if problems:
        raise ConfigError(str(path), problems)
    return data
