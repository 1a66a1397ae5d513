"""Resolve an experiment config: defaults < YAML file(s) < ``-o dotted.key=value`` overrides.

Values derived from the data (input width, classes, batch size) come last, at materialization
time; see ``tabs_assets.orchestration.derived``. Every validation problem is reported at once,
each by its dotted path.
"""

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tabs_assets.config.experiment import ExperimentConfig
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


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, with errors that name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        raise ConfigError(str(path), [f"file not found: {path}"]) from error
    except yaml.YAMLError as error:
        raise ConfigError(str(path), [f"not valid YAML: {error}"]) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of config keys"])
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b.c=value`` -> (``a.b.c``, YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("-o", [f"override {text!r} must look like dotted.key=value"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError("-o", [f"{key}: value {raw!r} is not valid YAML: {error}"]) from error
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


def _source_of(path: str, layers: list[tuple[str, dict[str, Any]]]) -> str:
    for name, flat in reversed(layers):
        if any(path == key or path.startswith(key + ".") for key in flat):
            return name
    return DEFAULT_SOURCE


def resolve_config(
    files: Sequence[Path] = (),
    overrides: Sequence[str] | Mapping[str, Any] = (),
    origin: str | None = None,
) -> ResolvedConfig:
    """Merge ``files`` in order, apply dotted ``overrides``, validate, and record sources."""
    raw: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    for path in files:
        data = read_yaml(Path(path))
        raw = deep_merge(raw, data)
        layers.append((f"file: {path}", flatten(data)))
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    override_layer: dict[str, Any] = {}
    for key, value in pairs:
        set_dotted(raw, key, value)
        override_layer[key] = value
    layers.append((OVERRIDE_SOURCE, override_layer))
    config = validate_model(ExperimentConfig, raw, origin or ", ".join(map(str, files)) or "-o")
    sources = {path: _source_of(path, layers) for path in flatten(config.model_dump(mode="json"))}
    return ResolvedConfig(config=config, sources=sources)
