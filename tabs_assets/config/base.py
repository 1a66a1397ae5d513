"""Shared building blocks for every config schema."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESULT_NEUTRAL = "result_neutral"


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def neutral(default: Any, description: str) -> Any:
    """A field that never changes a result (device, workers, chunking): kept out of cache keys."""
    return Field(default, description=description, json_schema_extra={RESULT_NEUTRAL: True})
