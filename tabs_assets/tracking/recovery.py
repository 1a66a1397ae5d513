"""Every entry read is tracked: an entry computed while tracking failed (a crash, a lock
timeout) or whose run went missing gets its run when it is next read, and runs a killed
process left RUNNING are closed."""

import time
from contextlib import suppress
from datetime import datetime
from typing import Any

import yaml

from tabs_assets import settings
from tabs_assets.store.entries import Store, StoreEntry
from tabs_assets.tracking.git import git_state
from tabs_assets.tracking.interface import AssetRun, TrackingOutcome
from tabs_assets.tracking.parents import update_parent
from tabs_assets.tracking.runs import record_run
from tabs_assets.tracking.session import Session, TrackingSettings, session_for
from tabs_assets.tracking.tags import ASSET_TAG, STORE_KEY_TAG

STALE_RUNNING_SECONDS = 3600  # a tracking server's RUNNING child older than this is dead


def is_tracked(uri: str, manifest: dict[str, Any], partition_key: str) -> bool:
    """The manifest names a finished run in this tracking store, and this partition's parent
    run already shows the entry (the fast path: no mlflow import)."""
    return bool(
        manifest.get("mlflow_run_id")
        and manifest.get("mlflow_tracking_uri") == uri
        and partition_key in (manifest.get("mlflow_partitions") or [])
    )


def track_entry(
    tracking: TrackingSettings,
    entry: StoreEntry,
    partition_key: str,
    asset: str,
    dagster_run_id: str,
) -> TrackingOutcome:
    """The entry's run, made sure of: a run that went missing or was left RUNNING by a killed
    process is replaced (stale RUNNING runs are closed as KILLED); a finished run the
    manifest does not know yet (killed between logging and writing the manifest) is adopted;
    the partition's parent run gets the entry's headline metrics."""
    session = session_for(tracking)
    manifest = entry.manifest
    run = _finished_run(tracking, session, entry, asset)
    if run is None:
        _close_stale(tracking, session, entry.key)
        return record_run(tracking, _entry_run(entry, partition_key, asset, dagster_run_id))
    seconds = manifest.get("compute_seconds")
    update_parent(
        session,
        tracking.resolved_store_root(),
        partition_key,
        {
            asset: (
                manifest.get("report", {}).get("metrics", {}),
                float(seconds) if seconds is not None else None,
            )
        },
        started_ms=run.info.start_time,
        dagster_run_id=None,
        git=git_state(settings.project_root()),
    )
    run_id, experiment_id = run.info.run_id, session.experiment_id
    return TrackingOutcome(run_id, experiment_id, tracking.run_url(experiment_id, run_id))


def _finished_run(
    tracking: TrackingSettings, session: Session, entry: StoreEntry, asset: str
) -> Any | None:
    """The entry's finished run: the one its manifest names, else any MLflow has for it."""
    manifest = entry.manifest
    if manifest.get("mlflow_run_id") and (
        manifest.get("mlflow_tracking_uri") == tracking.resolved_uri()
    ):
        try:
            run = session.client.get_run(manifest["mlflow_run_id"])
        except Exception:  # deleted, or another store
            run = None
        if run is not None and run.info.status == "FINISHED":
            return run
    found = session.client.search_runs(
        [session.experiment_id],
        filter_string=(
            f"tags.`{STORE_KEY_TAG}` = '{entry.key}' "
            "and attributes.status = 'FINISHED' "
            f"and tags.`{ASSET_TAG}` = '{asset}'"
        ),
        max_results=1,
    )
    return found[0] if found else None


def remember(
    store: Store, entry: StoreEntry, outcome: TrackingOutcome, uri: str, partition_key: str
) -> StoreEntry:
    """The entry with its run written into its manifest, for the fast path next time."""
    partitions = list(entry.manifest.get("mlflow_partitions") or [])
    fields = {
        "mlflow_run_id": outcome.run_id,
        "mlflow_experiment_id": outcome.experiment_id,
        "mlflow_url": outcome.url,
        "mlflow_tracking_uri": uri,
        "mlflow_partitions": sorted({*partitions, partition_key}),
    }
    with suppress(OSError):  # a read-only store: tracked in MLflow, remembered next time
        entry = store.update_manifest(entry, **fields)
    return entry


def _close_stale(tracking: TrackingSettings, session: Session, store_key: str) -> None:
    """Runs for this entry left RUNNING by a killed process: mark them KILLED."""
    stale = session.client.search_runs(
        [session.experiment_id],
        filter_string=f"tags.`{STORE_KEY_TAG}` = '{store_key}' and attributes.status = 'RUNNING'",
    )
    now = int(time.time() * 1000)
    for old in stale:
        if tracking.is_server() and now - old.info.start_time < STALE_RUNNING_SECONDS * 1000:
            continue  # may be a live writer: servers are not serialised by our lock
        session.client.set_terminated(old.info.run_id, "KILLED", end_time=now)


def _entry_run(entry: StoreEntry, partition_key: str, asset: str, dagster_run_id: str) -> AssetRun:
    """An AssetRun rebuilt from a store entry (no per-epoch history: it is not stored)."""
    manifest = entry.manifest
    try:
        material = yaml.safe_load((entry.path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        material = {}
    metrics = manifest.get("report", {}).get("metrics", {})
    seconds = float(manifest.get("compute_seconds") or 0.0)
    created = _created_epoch(manifest)
    return AssetRun(
        partition_key=partition_key,
        asset=asset,
        store_key=entry.key,
        dagster_run_id=manifest.get("dagster_run_id") or dagster_run_id,
        params=material.get("slice", {}) if isinstance(material, dict) else {},
        metrics={
            k: v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        },
        artifacts=sorted(p for p in entry.path.rglob("*") if p.is_file()),
        compute_seconds=seconds,
        started=(created - seconds) if created else None,
        ended=created,
        late=True,
    )


def _created_epoch(manifest: dict[str, Any]) -> float | None:
    try:
        return datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        return None
