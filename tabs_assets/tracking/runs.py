"""An asset's child run: its params, learning curves, metrics and files, under its partition's
parent run; and a study member's results, folded into as few runs as a comparison needs."""

import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from tabs_assets import settings
from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.tracking import registry_view
from tabs_assets.tracking.artifacts import log_dataset, log_files, manifest_of
from tabs_assets.tracking.git import GitState, git_state
from tabs_assets.tracking.interface import AssetRun, TrackingOutcome
from tabs_assets.tracking.parents import update_parent
from tabs_assets.tracking.session import TrackingSettings, session_for
from tabs_assets.tracking.tags import (
    ASSET_TAG,
    DAGSTER_ASSET_TAG,
    DAGSTER_RUN_TAG,
    NOTE_TAG,
    PARTITION_KEY_TAG,
    ROLE_ASSET,
    ROLE_TAG,
    STORE_KEY_TAG,
    TAG_PREFIX,
)
from tabs_assets.ui import links


def compute_seconds(run: AssetRun) -> float:
    """The run's compute time: given, else the one its entry's manifest records."""
    if run.compute_seconds is not None:
        return run.compute_seconds
    return float(manifest_of(run.artifacts)[1].get("compute_seconds") or 0.0)


def record_run(tracking: TrackingSettings, run: AssetRun) -> TrackingOutcome:
    """One asset's work as a child run of its partition's parent run (which it refreshes)."""
    from mlflow.entities import Metric, Param

    session = session_for(tracking)
    client, experiment_id = session.client, session.experiment_id
    store_root = tracking.resolved_store_root()
    seconds = compute_seconds(run)
    ended = run.ended or time.time()
    started_ms = int((run.started or (ended - seconds)) * 1000)
    git = git_state(settings.project_root())
    parent_id = update_parent(
        session,
        store_root,
        run.partition_key,
        {run.asset: (run.metrics, seconds)},
        started_ms=started_ms,
        dagster_run_id=run.dagster_run_id,
        git=git,
        upstream_metrics=run.upstream_metrics,
    )
    config = registry_view.config_of(store_root, run.partition_key)
    child = client.create_run(
        experiment_id,
        start_time=started_ms,
        run_name=run.asset,
        tags=_child_tags(run, parent_id, git, config),
    )
    run_id = child.info.run_id
    stamp = int(ended * 1000)
    params = registry_view.mlflow_params(run.params, config, store_root)
    metrics = [
        Metric(name, float(value), stamp, int(row.get("epoch", step)))
        for step, row in enumerate(run.history)
        for name, value in row.items()
        if name != "epoch"
    ] + [Metric(name, float(value), stamp, 0) for name, value in run.metrics.items()]
    metrics.append(Metric("compute_seconds", float(seconds), stamp, 0))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    if run.asset == "dataset" and config is not None:
        with suppress(Exception):
            log_dataset(client, run_id, config, store_root)
    log_files(client, run_id, run.artifacts)
    if git.dirty:
        client.log_text(run_id, git.diff, "git/uncommitted.diff")
    # FINISHED comes last: it marks a run whose artifacts are all logged.
    client.set_terminated(run_id, "FINISHED", end_time=max(int(time.time() * 1000), stamp))
    return TrackingOutcome(run_id, experiment_id, tracking.run_url(experiment_id, run_id))


def _child_tags(
    run: AssetRun, parent_id: str, git: GitState, config: ExperimentConfig | None
) -> dict[str, str]:
    """What the child run is, where it came from, and links to it in Dagster."""
    asset_page = links.dagster_asset_url(run.asset, run.partition_key)
    run_page = links.dagster_run_url(run.dagster_run_id)
    tags = {
        "mlflow.parentRunId": parent_id,
        "mlflow.source.git.commit": git.commit,
        "mlflow.source.type": "JOB",
        "mlflow.source.name": f"tabs_assets.defs.assets:{run.asset}",
        PARTITION_KEY_TAG: run.partition_key,
        ROLE_TAG: ROLE_ASSET,
        ASSET_TAG: run.asset,
        STORE_KEY_TAG: run.store_key,
        f"{TAG_PREFIX}dagster_run_id": run.dagster_run_id,
        f"{TAG_PREFIX}git_commit": git.commit,
        f"{TAG_PREFIX}git_dirty": str(git.dirty).lower(),
        DAGSTER_RUN_TAG: run_page,
        DAGSTER_ASSET_TAG: asset_page,
        NOTE_TAG: (
            f"**{run.asset}** of [{run.partition_key}]({asset_page}) · [Dagster run]({run_page})"
            + (f"\n\n{config.description}" if config is not None and config.description else "")
            + ("\n\n(tracked when read, after an interrupted run)" if run.late else "")
        ),
    }
    if run.late:
        tags[f"{TAG_PREFIX}tracked_late"] = "true"
    return tags


def record_member_runs(
    tracking: TrackingSettings, runs: Sequence[AssetRun]
) -> list[TrackingOutcome]:
    """A study member's computed results, in as few runs as a comparison needs.

    A training keeps its child run (its learning curves); every other result is folded
    into the member's parent run: its headline metrics, its store key as a tag, its files
    under ``<asset>/``. The parent is the member's one row in the runs table either way.
    """
    outcomes = {id(run): record_run(tracking, run) for run in runs if run.history}
    folded = [run for run in runs if not run.history]
    if folded:
        session = session_for(tracking)
        upstream: dict[str, dict[str, Any]] = {}
        for run in folded:
            upstream.update(run.upstream_metrics)
        parent_id = update_parent(
            session,
            tracking.resolved_store_root(),
            folded[0].partition_key,
            {run.asset: (run.metrics, compute_seconds(run)) for run in folded},
            started_ms=int(min(run.started or time.time() for run in folded) * 1000),
            dagster_run_id=folded[0].dagster_run_id,
            git=git_state(settings.project_root()),
            upstream_metrics=upstream,
            folded=folded,
        )
        url = tracking.run_url(session.experiment_id, parent_id)
        for run in folded:
            outcomes[id(run)] = TrackingOutcome(parent_id, session.experiment_id, url)
    return [outcomes[id(run)] for run in runs]
