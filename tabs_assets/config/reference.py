"""A Markdown reference of every config field, generated from the pydantic schemas."""

from typing import Any, get_args

from pydantic import BaseModel

from tabs_assets.config.base import RESULT_NEUTRAL
from tabs_assets.config.experiment import ExperimentConfig

TAGS = ("kind", "method")


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The config models inside an annotation (unions, Optional, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _members(arg)]


def _default(info: Any) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    return "`None`" if value is None else f"`{value!r}`"


def _rows(model: type[BaseModel], prefix: str, emitted: dict[type, str]) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if name in TAGS:
            continue
        members = _members(info.annotation)
        if not members:
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            note = " *(result-neutral)*" if extra.get(RESULT_NEUTRAL) else ""
            rows.append(f"| `{path}` | {_default(info)} | {info.description or ''}{note} |")
            continue
        for member in members:
            tag = next((k for k in TAGS if k in member.model_fields), None)
            label = f"{path}` (`{tag}: {member.model_fields[tag].default}`)" if tag else f"{path}`"
            doc = (member.__doc__ or "").strip().splitlines()[0]
            if member in emitted:
                rows.append(f"| `{label} | | same fields as `{emitted[member]}` |")
                continue
            emitted[member] = path
            rows.append(f"| **`{label}** | | {doc} |")
            rows += _rows(member, f"{path}.", emitted)
    return rows


def config_reference() -> str:
    """Every key of an experiment config with its default and meaning, as a Markdown table."""
    header = "| key | default | meaning |\n|---|---|---|"
    return header + "\n" + "\n".join(_rows(ExperimentConfig, "", {}))
