"""The tracker the cached path calls: each call serialised with other writers, and a failure
handed back as an outcome, never raised (the result is already stored)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tabs_assets.store.entries import Store, StoreEntry
from tabs_assets.tracking.interface import AssetRun, TrackingOutcome
from tabs_assets.tracking.recovery import is_tracked, remember, track_entry
from tabs_assets.tracking.runs import record_member_runs, record_run
from tabs_assets.tracking.session import TrackingSettings, forget_session, serialised

T = TypeVar("T")


@dataclass(frozen=True)
class MlflowTracker:
    """MLflow tracking as ``settings`` say (see tabs_assets.tracking)."""

    settings: TrackingSettings = field(default_factory=TrackingSettings)

    def resolved_uri(self) -> str:
        return self.settings.resolved_uri()

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return self.settings.run_url(experiment_id, run_id)

    def record(self, run: AssetRun) -> TrackingOutcome:
        """Log one asset's work; never raises (the failure is returned instead)."""
        if not self.settings.enabled:
            return TrackingOutcome()  # switched off on purpose: nothing to report
        return self._logged(lambda: record_run(self.settings, run), lambda failed: failed)

    def record_member(self, runs: Sequence[AssetRun]) -> list[TrackingOutcome]:
        """A study member's computed results (runs.record_member_runs); never raises."""
        if not self.settings.enabled:
            return [TrackingOutcome() for _ in runs]
        return self._logged(
            lambda: record_member_runs(self.settings, runs), lambda failed: [failed for _ in runs]
        )

    def ensure_tracked(
        self, store: Store, entry: StoreEntry, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[StoreEntry, TrackingOutcome | None]:
        """Track a store entry read on a cache hit if MLflow lacks it (recovery.track_entry);
        never raises. Returns the (possibly updated) entry and what happened (None when
        nothing had to be done)."""
        uri = self.resolved_uri()
        if not self.settings.enabled or is_tracked(uri, entry.manifest, partition_key):
            return entry, None
        outcome = self._logged(
            lambda: track_entry(self.settings, entry, partition_key, asset, dagster_run_id),
            lambda failed: failed,
        )
        if outcome.error:
            return entry, outcome
        return remember(store, entry, outcome, uri, partition_key), outcome

    def _logged(self, log: Callable[[], T], on_failure: Callable[[TrackingOutcome], T]) -> T:
        """``log()`` with the store to itself; a failure becomes ``on_failure(outcome)``."""
        try:
            with serialised(self.settings):
                return log()
        except Exception as error:  # any MLflow/network failure must not lose the result
            forget_session(self.settings)
            return on_failure(TrackingOutcome(error=f"{type(error).__name__}: {error}"))
