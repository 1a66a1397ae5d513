"""Resolve an experiment config: defaults < YAML file(s) < ``-o dotted.key=value`` overrides.

Values derived from the data (input width, classes, batch size) come last, at materialization
time; see ``tabs_assets.graph.derived``. Every validation problem is reported at once,
each by its dotted path.
"""

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tabs_assets.config.experiment import MAX_DESCRIPTION_LENGTH, ExperimentConfig
from tabs_assets.config.hashing import content_hash

M = TypeVar("M", bound=BaseModel)

DEFAULT_SOURCE = "default"
OVERRIDE_SOURCE = "override (-o)"


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists ``dotted.path: message`` lines."""

    def __init__(self, origin: str, problems: Sequence[str]) -> None:
        self.origin = origin
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid config ({origin}): {len(self.problems)} problem(s)\n{lines}")


@dataclass(frozen=True)
class ResolvedConfig:
    """A validated config and where each of its values came from."""

    config: ExperimentConfig
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def partition_key(self) -> str:
        return partition_key(self.config)


def partition_key(config: ExperimentConfig) -> str:
    """``<name>-<8 hex of the full config hash>``: readable, stable, result-neutral-blind."""
    return f"{config.name}-{content_hash(config)[:8]}"


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


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b.c=value`` -> (``a.b.c``, YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("-o", [f"override {text!r} must look like dotted.key=value"])
    try:
        value = load_yaml_text(raw, f"-o {key.strip()}") if raw.strip() else None
    except (yaml.YAMLError, RecursionError) as error:
        raise ConfigError("-o", [f"{key}: value {raw!r} is not valid YAML: {error}"]) from None
    return key.strip(), value


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; any other value in ``update`` replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Replace the value at ``dotted`` (creating mappings on the way)."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = copy.deepcopy(value)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings by dotted path (lists are leaves)."""
    if isinstance(data, Mapping) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def _dotted_location(loc: Iterable[Any], raw: Any) -> str:
    """Turn a pydantic error location into the user's dotted path (union tags dropped)."""
    parts: list[str] = []
    node = raw
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        elif isinstance(node, Mapping) and part in node.values():
            continue  # a discriminated-union tag such as 'cake_on_sea'
        parts.append(str(part))
    return ".".join(parts) or "<root>"


def validation_problems(error: ValidationError, raw: Any) -> list[str]:
    """One ``dotted.path: message`` line per pydantic error."""
    problems = []
    for item in error.errors(include_url=False):
        where = _dotted_location(item["loc"], raw)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (typo?)"
        elif item["type"] == "missing":
            message = "required value is missing"
        elif item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return problems


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    members = get_args(annotation) or (annotation,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def fill_default_tags(model: type[BaseModel], raw: Any, default: Any = None) -> Any:
    """Give partial mappings of a discriminated union the tag of the field's default.

    ``-o explainer.n_steps=10`` then means "the default explainer, with 10 steps" rather than
    "an explainer of unknown kind".
    """
    if not isinstance(raw, dict):
        return raw
    filled = dict(raw)
    for name, info in model.model_fields.items():
        if name not in filled or not isinstance(filled[name], dict):
            continue
        members = _union_members(info.annotation)
        field_default = getattr(default, name, None) if default is not None else None
        if field_default is None and not info.is_required():
            field_default = info.get_default(call_default_factory=True)
        tag = info.discriminator if isinstance(info.discriminator, str) else None
        chosen = members[0] if len(members) == 1 else None
        if tag is not None:
            value = filled[name].get(tag, getattr(field_default, tag, None))
            if value is not None:
                filled[name] = {tag: value, **filled[name]}
            chosen = next((m for m in members if m.model_fields[tag].default == value), None)
        if chosen is not None:
            same_kind = isinstance(field_default, chosen)
            filled[name] = fill_default_tags(
                chosen, filled[name], field_default if same_kind else None
            )
    return filled


def validate_model(model: type[M], raw: dict[str, Any], origin: str) -> M:
    """``model`` from ``raw``, or a ConfigError listing every problem by dotted path."""
    raw = fill_default_tags(model, raw)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(origin, validation_problems(error, raw)) from None


DERIVED_DESCRIPTION_SOURCE = "derived: the described config with later changes"
_DESCRIPTION_KEYS = {"name", "description"}
QUOTE_LENGTH = 300
"""Characters of a superseded description quoted in the derived one."""


def described_changes(
    description: Any, layers: list[tuple[str, dict[str, Any]]], base: ResolvedConfig | None
) -> str | None:
    """The description a config with changes after its description gets, or None if unchanged.

    A description is true of the config it was written for: the file (or registered config)
    that sets it. Files and ``-o`` overrides applied after it may change what it states (the
    quickstart's "Latent Shift paths" with ``-o explainer.method=revise``), so it is kept only
    as a quote of where the config came from, followed by the changes:
    ``quickstart.yaml ("Latent Shift paths ...") with explainer.method=revise``.
    """
    if not description:
        return None
    described_by = base.config.name if base is not None else "the defaults"
    changes: list[str] = []
    for name, flat in layers:
        keys = [key for key in flat if key.split(".")[0] not in _DESCRIPTION_KEYS]
        if "description" in flat:
            described_by = Path(name.removeprefix("file: ")).name
            changes = []
        elif name == OVERRIDE_SOURCE:
            changes += [f"{key}={_override_text(flat[key])}" for key in keys]
        elif keys:
            changes.append(Path(name.removeprefix("file: ")).name)
    if not changes:
        return None
    quote = description if len(description) <= QUOTE_LENGTH else description[:QUOTE_LENGTH] + "..."
    text = f'{described_by} ("{quote}") with {", ".join(changes)}'
    return text[:MAX_DESCRIPTION_LENGTH]


def _override_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _source_of(path: str, layers: list[tuple[str, dict[str, Any]]]) -> str:
    for name, flat in reversed(layers):
        if any(path == key or path.startswith(key + ".") for key in flat):
            return name
    return DEFAULT_SOURCE


def absolute_data_path(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with a relative ``dataset.path`` made absolute against ``folder``.

    A config file's relative data path is relative to the file's folder (as a study's ``base:``
    is relative to the study), whatever the working directory; an override's is relative to the
    working directory.
    """
    dataset = data.get("dataset")
    if not isinstance(dataset, Mapping) or not isinstance(dataset.get("path"), str):
        return data
    path = Path(dataset["path"]).expanduser()
    if path.is_absolute() or not dataset["path"]:
        return data
    return {**data, "dataset": {**dataset, "path": str(folder / path)}}


def empty_data_path_problems(raw: Mapping[str, Any]) -> list[str]:
    """An empty ``dataset.path`` of a data file, which would otherwise be read as ``.``: the
    working directory."""
    dataset = raw.get("dataset")
    if not isinstance(dataset, Mapping) or dataset.get("kind") != "tabular_file":
        return []
    if dataset.get("path") != "":
        return []
    return ["dataset.path: '' is empty; name a CSV or Parquet file"]


def resolve_config(
    files: Sequence[Path] = (),
    overrides: Sequence[str] | Mapping[str, Any] = (),
    origin: str | None = None,
    base: ResolvedConfig | None = None,
) -> ResolvedConfig:
    """Merge ``files`` in order, apply dotted ``overrides``, validate, and record sources.

    ``base``: start from an already resolved config (a registered one) and keep the sources it
    recorded for every value that ``files`` and ``overrides`` leave alone.
    """
    raw: dict[str, Any] = base.config.model_dump(mode="json") if base else {}
    layers: list[tuple[str, dict[str, Any]]] = []
    for path in files:
        data = absolute_data_path(read_yaml(Path(path)), Path(path).absolute().parent)
        raw = deep_merge(raw, data)
        layers.append((f"file: {path}", flatten(data)))
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    override_layer: dict[str, Any] = {}
    for key, value in pairs:
        set_dotted(raw, key, value)
        override_layer[key] = value
    problems = non_finite_problems(override_layer)
    if problems:
        raise ConfigError(origin or "-o", problems)
    raw = absolute_data_path(raw, Path.cwd())
    problems = empty_data_path_problems(raw)
    if problems:
        raise ConfigError(origin or ", ".join(map(str, files)) or "-o", problems)
    layers.append((OVERRIDE_SOURCE, override_layer))
    description = described_changes(raw.get("description"), layers, base)
    if description is not None:
        raw["description"] = description
        layers.append((DERIVED_DESCRIPTION_SOURCE, {"description": description}))
    config = validate_model(ExperimentConfig, raw, origin or ", ".join(map(str, files)) or "-o")
    sources = {path: _source_of(path, layers) for path in flatten(config.model_dump(mode="json"))}
    if base is not None:
        for path, source in sources.items():
            if source == DEFAULT_SOURCE:
                sources[path] = base.sources.get(path, DEFAULT_SOURCE)
    return ResolvedConfig(config=config, sources=sources)
