"""What the cached path hands to tracking (an AssetRun), what it gets back (a TrackingOutcome),
and what it asks of a tracker."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tabs_assets.store.entries import Store, StoreEntry


@dataclass(frozen=True)
class AssetRun:
    """What an asset that did work reports to MLflow."""

    partition_key: str
    asset: str
    store_key: str
    dagster_run_id: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    history: Sequence[dict[str, float]] = ()
    artifacts: Sequence[Path] = ()
    # Real times of the work (epoch seconds); default: read from the entry's manifest.
    compute_seconds: float | None = None
    started: float | None = None
    ended: float | None = None
    late: bool = False  # tracked when read, after a crash or a lock timeout
    # asset -> metrics of the upstream entries the result builds on (for a new parent run)
    upstream_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackingOutcome:
    run_id: str | None = None
    experiment_id: str | None = None
    url: str | None = None
    error: str | None = None
    pending: bool = False  # queued for a tracking thread (study steps), not logged yet


class Tracker(Protocol):
    """What the cached path asks of tracking: the resource, or a study step's queue."""

    def record(self, run: AssetRun) -> TrackingOutcome: ...

    def ensure_tracked(
        self, store: Store, entry: StoreEntry, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[StoreEntry, TrackingOutcome | None]: ...

    def resolved_uri(self) -> str: ...
