"""A small result record: JSON values plus named arrays, stored without pickle."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

VALUES_FILE = "values.json"
ARRAYS_FILE = "arrays.safetensors"


def _json_safe(value: Any) -> Any:
    """NaN/inf become strings JSON can hold ('nan'), read back by ``_from_json``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _from_json(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


@dataclass(frozen=True)
class Record:
    values: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        (directory / VALUES_FILE).write_text(json.dumps(_json_safe(self.values), indent=2))
        if self.arrays:
            save_file(
                {k: np.ascontiguousarray(v) for k, v in self.arrays.items()},
                directory / ARRAYS_FILE,
            )

    @classmethod
    def load(cls, directory: Path) -> "Record":
        values = _from_json(json.loads((directory / VALUES_FILE).read_text()))
        arrays_path = directory / ARRAYS_FILE
        return cls(values, load_file(arrays_path) if arrays_path.exists() else {})
