"""Canonical JSON and content hashes: identical across processes and PYTHONHASHSEED values."""

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

from tabs_assets.config.base import RESULT_NEUTRAL


def _is_neutral(model: type[BaseModel], field_name: str) -> bool:
    extra = model.model_fields[field_name].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(RESULT_NEUTRAL))


def result_slice(value: Any) -> Any:
    """Plain JSON-able data of ``value`` without its result-neutral fields."""
    if isinstance(value, BaseModel):
        return {
            name: result_slice(getattr(value, name))
            for name in type(value).model_fields
            if not _is_neutral(type(value), name)
        }
    if isinstance(value, Mapping):
        return {str(key): result_slice(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((result_slice(item) for item in value), key=canonical_json)
    if isinstance(value, (list, tuple)):
        return [result_slice(item) for item in value]
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value!r} cannot be hashed")
        return 0.0 if value == 0 else value  # -0.0 and 0.0 are one value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, shortest round-trip floats (Python's repr)."""
    return json.dumps(result_slice(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def content_hash(data: Any) -> str:
    """Full sha256 hex digest of the canonical JSON of ``data``."""
    return hashlib.sha256(canonical_json(data).encode("ascii")).hexdigest()
