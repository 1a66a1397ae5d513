"""Dagster resources: the store with its registry, and MLflow tracking (tabs_assets.tracking)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from tabs_assets import settings
from tabs_assets.defs import liveness
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store, StoreEntry
from tabs_assets.tracking.interface import AssetRun, TrackingOutcome
from tabs_assets.tracking.session import DEFAULT_EXPERIMENT, TrackingSettings
from tabs_assets.tracking.tracker import MlflowTracker

FORCE_ALL = "*"


class StoreResource(ConfigurableResource):
    """The content-addressed store and the config registry beside it."""

    root: str | None = Field(
        None,
        description=f"store root; default ${settings.STORE_ENV} or .tabs_store in the checkout",
    )
    force: list[str] = Field(
        default_factory=list,
        description=f"asset names to recompute even when cached ('{FORCE_ALL}' = all)",
    )

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve() if self.root else settings.store_root()

    def store(self) -> Store:
        return Store(self.root_path)

    def registry(self) -> Registry:
        return Registry(self.root_path)

    def is_forced(self, asset: str) -> bool:
        return FORCE_ALL in self.force or asset in self.force

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """An in-process run holds a liveness lock, so a later run can free its pool slots
        if it is killed (see liveness.py)."""
        run_id, instance = _run_of(context)
        if run_id and instance is not None:
            liveness.start_guard(instance, run_id, context.log)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        run_id, _ = _run_of(context)
        if run_id:
            liveness.stop_guard(run_id)


def _run_of(context: InitResourceContext) -> tuple[str | None, Any]:
    try:
        run = context.run
        return (run.run_id if run is not None else None), context.instance
    except Exception:  # a sensor or a test context: no run
        return None, None


class TrackingResource(ConfigurableResource):
    """Where runs go: SQLite in the store root by default, or a tracking server URL.

    Dagster's config for an MlflowTracker, which does the work.
    """

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else "
        "sqlite:///<store root>/mlflow.db",
    )
    experiment_name: str = DEFAULT_EXPERIMENT
    ui_url: str | None = Field(
        None,
        description="base URL of the MLflow UI for links; default $TABS_ASSETS_MLFLOW_UI_URL, "
        "else the tracking server, else http://127.0.0.1:5000",
    )
    enabled: bool = True
    store_root: str | None = Field(None, description="default: the store's default root")

    def tracker(self) -> MlflowTracker:
        return MlflowTracker(
            TrackingSettings(
                tracking_uri=self.tracking_uri,
                experiment_name=self.experiment_name,
                ui_url=self.ui_url,
                enabled=self.enabled,
                store_root=self.store_root,
            )
        )

    def resolved_uri(self) -> str:
        return self.tracker().resolved_uri()

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return self.tracker().run_url(experiment_id, run_id)

    def record(self, run: AssetRun) -> TrackingOutcome:
        return self.tracker().record(run)

    def record_member(self, runs: Sequence[AssetRun]) -> list[TrackingOutcome]:
        return self.tracker().record_member(runs)

    def ensure_tracked(
        self, store: Store, entry: StoreEntry, partition_key: str, asset: str, dagster_run_id: str
    ) -> tuple[StoreEntry, TrackingOutcome | None]:
        return self.tracker().ensure_tracked(store, entry, partition_key, asset, dagster_run_id)
