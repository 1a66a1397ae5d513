"""A partition's parent run: its row in the comparison table. Config as params, its children's
headline metrics, its studies as tags, links to Dagster; files of results folded into it."""

import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.tracking import registry_view
from tabs_assets.tracking.artifacts import log_dataset, log_files
from tabs_assets.tracking.git import GitState
from tabs_assets.tracking.interface import AssetRun
from tabs_assets.tracking.session import ParentState, Session
from tabs_assets.tracking.tags import (
    DAGSTER_ASSET_TAG,
    DAGSTER_RUN_TAG,
    NOTE_TAG,
    PARTITION_KEY_TAG,
    ROLE_PARTITION,
    ROLE_TAG,
    RUN_NAME_TAG,
    STORE_KEY_TAG,
    STUDY_TAG,
    TAG_PREFIX,
)
from tabs_assets.ui import describe, links

# Child-run metrics the parent run shows, by asset (evaluation metrics: all of them).
_MODEL_HEADLINES = ("test_accuracy", "test_nll", "best_epoch")
_PATH_HEADLINES = ("explainer_seconds",)


def parent_headlines(asset: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics of an asset's run that its config's parent run shows."""
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if asset == "explanation_metrics":
        return numbers
    if asset in {"classifier", "generative_model", "reference_density"}:
        return {f"{asset}_{k}": v for k, v in numbers.items() if k in _MODEL_HEADLINES}
    if asset == "counterfactual_paths":
        return {k: v for k, v in numbers.items() if k in _PATH_HEADLINES}
    return {}


def update_parent(
    session: Session,
    store_root: Path,
    partition_key: str,
    results: dict[str, tuple[dict[str, Any], float | None]],
    *,
    started_ms: int,
    dagster_run_id: str | None,
    git: GitState,
    upstream_metrics: dict[str, dict[str, Any]] | None = None,
    folded: Sequence[AssetRun] = (),
) -> str:
    """Create or refresh the partition's parent run with ``results`` (asset -> its metrics
    and compute seconds); returns its id.

    ``upstream_metrics`` (asset -> metrics of the entries this result builds on) give the
    parent the headlines of results it re-uses, so a study member's parent run shows its
    classifier's accuracy and reference density's NLL without a tracking call per re-used
    entry. ``folded`` results have no run of their own: their files are logged to the
    parent under ``<asset>/`` and their store keys tagged on it.
    """
    from mlflow.entities import Metric, Param, RunTag

    client = session.client
    config = registry_view.config_of(store_root, partition_key)
    tags = _partition_tags(store_root, partition_key, config, git)
    if dagster_run_id:
        tags[DAGSTER_RUN_TAG] = links.dagster_run_url(dagster_run_id)
    state = _parent_state(session, partition_key)
    if state is None:
        state = _create_parent(session, store_root, partition_key, config, tags, started_ms)
        changed: list[Any] = []
    else:
        changed = [RunTag(k, v) for k, v in tags.items() if state.tags.get(k) != v]
        state.tags.update(tags)
    new_params: list[Any] = []
    if config is not None:
        params = registry_view.mlflow_params(config.model_dump(mode="json"), config, store_root)
        new_params = [Param(k, v) for k, v in params.items() if k not in state.params]
        state.params.update(param.key for param in new_params)
    values = _headline_values(state, results, upstream_metrics or {})
    changed += [RunTag(f"{STORE_KEY_TAG}.{run.asset}", run.store_key) for run in folded]
    now = int(time.time() * 1000)
    client.log_batch(  # MLflow splits it into the batch sizes it accepts
        state.run_id,
        params=new_params,
        metrics=[Metric(k, v, now, 0) for k, v in values.items()],
        tags=changed,
    )
    for run in folded:
        log_files(client, state.run_id, run.artifacts, folder=run.asset)
    client.set_terminated(state.run_id, "FINISHED", end_time=now)
    return state.run_id


def _create_parent(
    session: Session,
    store_root: Path,
    partition_key: str,
    config: ExperimentConfig | None,
    tags: dict[str, str],
    started_ms: int,
) -> ParentState:
    run = session.client.create_run(
        session.experiment_id,
        start_time=started_ms,
        run_name=tags.get(RUN_NAME_TAG, partition_key),
        tags=tags,
    )
    state = ParentState(run.info.run_id, set(), dict(tags), {})
    session.parents[partition_key] = state
    if config is not None:
        with suppress(Exception):  # the dataset view is a nicety; never block tracking
            log_dataset(session.client, state.run_id, config, store_root)
    return state


def _headline_values(
    state: ParentState,
    results: dict[str, tuple[dict[str, Any], float | None]],
    upstream_metrics: dict[str, dict[str, Any]],
) -> dict[str, float]:
    """The parent's metrics: headlines of upstream results and of ``results``, and compute
    seconds per asset and in all (as far as this process knows them)."""
    values: dict[str, float] = {}
    for upstream, upstream_values in upstream_metrics.items():
        values.update(parent_headlines(upstream, upstream_values))
    for asset, (metrics, compute_seconds) in results.items():
        values.update(parent_headlines(asset, metrics))
        if compute_seconds is not None:
            state.compute_seconds[asset] = float(compute_seconds)
            values[f"{asset}_compute_seconds"] = float(compute_seconds)
            values["compute_seconds"] = sum(state.compute_seconds.values())
    return values


def _partition_tags(
    store_root: Path, partition_key: str, config: ExperimentConfig | None, git: GitState
) -> dict[str, str]:
    """Name, description, studies and links of the partition's parent run."""
    study = registry_view.study_of(store_root, partition_key) if config is None else None
    page = links.dagster_partition_url(partition_key, is_study=study is not None)
    tags = {
        PARTITION_KEY_TAG: partition_key,
        ROLE_TAG: ROLE_PARTITION,
        "mlflow.source.git.commit": git.commit,
        "mlflow.source.type": "JOB",
        DAGSTER_ASSET_TAG: page,
    }
    if study is not None:
        tags[RUN_NAME_TAG] = describe.study_run_name(study.study.name, len(study.members))
    if config is not None:
        tags.update(_config_tags(store_root, partition_key, config, page))
    studies = registry_view.studies_with(store_root, partition_key)
    if studies:
        tags[STUDY_TAG] = ",".join(studies)
        tags.update({f"{STUDY_TAG}.{name}": "true" for name in studies})
    return tags


def _config_tags(
    store_root: Path, partition_key: str, config: ExperimentConfig, page: str
) -> dict[str, str]:
    """A config partition's run name (with its study labels), source and description."""
    record = registry_view.config_record(store_root, partition_key)
    labels = record.get("labels")
    lines = [f"**{config.description}**" if config.description else f"**{partition_key}**"]
    lines += [
        f"- {name}: {value}"
        for name, value in describe.config_in_words(config).items()
        if name != "description"
    ]
    lines.append(f"- Dagster: [{partition_key}]({page})")
    return {
        RUN_NAME_TAG: describe.run_name(config, labels if isinstance(labels, dict) else None),
        "mlflow.source.name": str(record.get("source", "tabs_assets")),
        f"{TAG_PREFIX}summary": describe.config_summary_line(config),
        NOTE_TAG: "\n".join(lines),
    }


def _parent_state(session: Session, partition_key: str) -> ParentState | None:
    """The partition's parent run, as this process knows it, else as MLflow has it."""
    if partition_key in session.parents:
        return session.parents[partition_key]
    found = session.client.search_runs(
        [session.experiment_id],
        filter_string=(
            f"tags.`{PARTITION_KEY_TAG}` = '{partition_key}' "
            f"and tags.`{ROLE_TAG}` = '{ROLE_PARTITION}'"
        ),
        max_results=1,
    )
    if not found:
        return None
    parent = found[0]
    state = ParentState(
        parent.info.run_id,
        set(parent.data.params),
        dict(parent.data.tags),
        {
            k.removesuffix("_compute_seconds"): v
            for k, v in parent.data.metrics.items()
            if k.endswith("_compute_seconds")
        },
    )
    session.parents[partition_key] = state
    return state
