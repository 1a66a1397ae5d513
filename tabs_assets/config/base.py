"""Shared building blocks for every config schema."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

RESULT_NEUTRAL = "result_neutral"
# numpy's seeds (np.random.seed, RandomState) are 32-bit unsigned integers.
MAX_SEED = 2**32 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
PositiveInt = Annotated[int, Field(gt=0)]
# Hidden layer widths: at least one layer, each of at least one unit.
HiddenSizes = Annotated[list[PositiveInt], Field(min_length=1)]


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, instances are immutable.

    Strict types: ``true`` or ``'10'`` never become numbers (an int is a valid float), and
    floats must be finite.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )


def neutral(default: Any, description: str, **constraints: Any) -> Any:
    """A field that never changes a result (device, workers, chunking): kept out of cache keys."""
    return Field(
        default, description=description, json_schema_extra={RESULT_NEUTRAL: True}, **constraints
    )
