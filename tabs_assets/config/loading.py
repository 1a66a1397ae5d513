"""Resolve an experiment config: defaults < YAML file(s) < ``-o dotted.key=value`` overrides.

Values derived from the data (input width, classes, batch size) come last, at materialization
time; see ``tabs_assets.cli.derived``. Every validation problem is reported at once,
each by its dotted path.
"""

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tabs_assets.config.errors import ConfigError
from tabs_assets.config.experiment import MAX_DESCRIPTION_LENGTH, ExperimentConfig
from tabs_assets.config.hashing import content_hash
from tabs_assets.config.yaml_files import load_yaml_text, non_finite_problems, read_yaml

M = TypeVar("M", bound=BaseModel)

DEFAULT_SOURCE = "default"
OVERRIDE_SOURCE = "override (-o)"


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
