"""Dagster resources for the store (the MLflow resource lives in tracking.py)."""

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from tabs_assets import settings
from tabs_assets.defs import liveness
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store

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
