"""The one execution path of every per-config asset: look up, or compute once, store, track.

On a hit the asset does no work and reports ``cache: hit`` with the MLflow run that made the
entry. On a miss it takes the key's lock (another process may be computing it: then this one
waits and reuses the result), computes, writes the entry atomically, then logs to MLflow. The
store key is reported to Dagster as the data version, so Dagster's staleness and the cache agree.
"""

import json
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    BetaWarning,
    DataVersion,
    MaterializeResult,
    Output,
    asset,
)

from tabs_assets import settings
from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.hashing import content_hash
from tabs_assets.defs import metadata
from tabs_assets.defs.checks import (
    dagster_check_results,
    dagster_check_specs,
    entry_outcomes,
    stored_checks,
)
from tabs_assets.defs.compute import Computed, Inputs, RunLog
from tabs_assets.defs.io_manager import StoredInput, StoredRef
from tabs_assets.defs.partitions import config_partitions
from tabs_assets.defs.resources import StoreResource
from tabs_assets.defs.slurm.job_entry import ended_quietly_by_slurm
from tabs_assets.defs.tags import training_op_tags
from tabs_assets.graph.nodes import NODES, Node, entry_address, key_material
from tabs_assets.store.entries import KEY_LENGTH, MANIFEST, Store, StoreEntry
from tabs_assets.tracking.interface import AssetRun, Tracker, TrackingOutcome
from tabs_assets.ui import describe, previews

# The store key is the data version by design; Dagster marks the parameter as beta.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*data_version.*")


ComputeFn = Callable[[ExperimentConfig, Inputs, RunLog], Computed]
LOADERS: dict[str, Callable[[Path], Any]] = {}
COMPUTE: dict[str, ComputeFn] = {}  # per-config asset name -> its compute function


def config_words(registry: Any, partition_key: str) -> dict[str, str]:
    """A partition's config (or study) in words, for the metadata; empty when unknown."""
    try:
        return describe.config_in_words(registry.config(partition_key))
    except Exception:
        pass
    try:
        record = registry.study(partition_key)
    except Exception:
        return {}
    words = {"study": record.study.name, "members": str(len(record.members))}
    description = getattr(record.study, "description", "")
    return {**words, "description": description} if description else words


def _metadata(
    entry: StoreEntry,
    status: str,
    outcome: TrackingOutcome | None,
    words: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Config in words, metrics to 4 significant digits with their meaning, small previews,
    and the MLflow link built from today's $TABS_ASSETS_MLFLOW_UI_URL (see ui/links.py)."""
    error = outcome.error if outcome is not None else None
    return metadata.dagster_metadata(entry, status, error, words or {})


def metadata_for(cached: "Cached", words: dict[str, str] | None = None) -> dict[str, Any]:
    """The Dagster metadata of a resolved target (a step's output or a reported member)."""
    return _metadata(cached.entry, cached.status, cached.outcome, words)


@dataclass(frozen=True)
class CacheTarget:
    """Where one asset result lives and what went into its key."""

    asset: str
    store_name: str
    key: str
    material: dict[str, Any]  # the key material, written as the entry's config.yaml
    code_version: str

    @classmethod
    def from_material(cls, asset: str, store_name: str, material: dict[str, Any]) -> "CacheTarget":
        key = content_hash(material)[:KEY_LENGTH]
        return cls(asset, store_name, key, material, material["code_version"])

    @classmethod
    def for_config(cls, node: Node, config: ExperimentConfig) -> "CacheTarget":
        return cls.from_material(node.name, node.store_name, key_material(node.name, config))


@dataclass(frozen=True)
class RunScope:
    """What the cached path needs of the run it serves: a Dagster step, or one study member."""

    store: Store
    tracking: Tracker
    forced: Callable[[str], bool]
    partition_key: str
    run_id: str
    log: RunLog
    durable: bool = True  # False: the caller syncs the store once per batch (study shards)

    @classmethod
    def of_step(cls, context: AssetExecutionContext) -> "RunScope":
        store_resource: StoreResource = context.resources.store
        return cls(
            store=store_resource.store(),
            tracking=context.resources.tracking,
            forced=store_resource.is_forced,
            partition_key=context.partition_key,
            run_id=context.run.run_id,
            log=context.log,
        )


@dataclass(frozen=True)
class Cached:
    """The entry a target resolved to, how (hit, miss, forced) and its tracking."""

    entry: StoreEntry
    status: str
    outcome: TrackingOutcome | None = None

    @property
    def computed(self) -> bool:
        return not self.status.startswith("hit")


def materialize_cached(
    scope: RunScope, target: CacheTarget, compute: Callable[[], Computed]
) -> Cached:
    """Look ``target`` up; on a miss compute it once (per-key lock), store it, track it."""
    store = scope.store
    forced = scope.forced(target.asset)
    entry = None if forced else store.find(target.store_name, target.key)
    if entry is not None:  # tracked now if a crash or a lock timeout left it untracked
        entry, outcome = scope.tracking.ensure_tracked(
            store, entry, scope.partition_key, target.asset, scope.run_id
        )
        if outcome is not None and outcome.error:
            scope.log.warning(f"MLflow tracking of a cached entry failed: {outcome.error}")
        return Cached(entry, "hit", outcome)

    def log_wait() -> None:
        scope.log.info(f"{target.asset}: waiting for another process computing {target.key}")

    with store.locks.hold(target.store_name, target.key, on_wait=log_wait):
        entry = None if forced else store.find(target.store_name, target.key)
        if entry is not None:
            return Cached(entry, "hit (computed meanwhile by another process)")
        entry, outcome = _compute_and_store(scope, target, compute)
        return Cached(entry, "forced" if forced else "miss", outcome)


def run_cached(
    context: AssetExecutionContext, target: CacheTarget, compute: Callable[[], Computed]
) -> Output:
    """Materialize ``target`` for the context's partition through the store; the output is the
    entry's address, which the IO manager hands to downstream inputs (study assets)."""
    cached = materialize_cached(RunScope.of_step(context), target, compute)
    return Output(
        StoredRef(target.store_name, target.key),
        data_version=DataVersion(target.key),
        metadata=step_metadata(context, target, cached),
    )


def step_metadata(
    context: AssetExecutionContext, target: CacheTarget, cached: Cached
) -> dict[str, Any]:
    """The step's materialization metadata; anything but a plain hit also goes to the run log (a
    hit says ``cache: hit`` in the metadata: one event-log write less per step)."""
    if cached.status != "hit":
        context.log.info(
            f"{target.asset} [{context.partition_key}]: cache {cached.status}, key {target.key}"
        )
    return metadata_for(
        cached, config_words(context.resources.store.registry(), context.partition_key)
    )


def _upstream_metrics(store: Store, material: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """asset -> reported metrics of the per-config entries a result builds on (manifests only)."""
    found = {}
    for name, key in material.get("upstream", {}).items():
        if name not in NODES:  # a study's upstream: member partitions
            continue
        try:
            manifest = json.loads(
                (store.entry_path(NODES[name].store_name, key) / MANIFEST).read_text()
            )
            found[name] = manifest["report"]["metrics"]
        except (OSError, ValueError, KeyError):
            continue
    return found


@cache
def _share_cores() -> None:
    """Set torch's threads once per process, before the first computation (see settings)."""
    import torch

    torch.set_num_threads(settings.torch_threads())


def _compute_and_store(
    scope: RunScope, target: CacheTarget, compute: Callable[[], Computed]
) -> tuple[StoreEntry, TrackingOutcome]:
    _share_cores()
    started = time.perf_counter()
    computed = compute()
    seconds = time.perf_counter() - started
    report = {"metrics": computed.metrics, "tables": computed.tables, "previews": computed.previews}

    def save(directory: Path) -> None:  # runs before Store.write builds the manifest
        computed.save(directory)
        report["thumbnails"] = previews.write_thumbnails(directory, computed.previews)

    entry = scope.store.write(
        target.store_name,
        target.key,
        save,
        annotate=lambda directory: stored_checks(target.asset, directory),
        durable=scope.durable,
        config_slice=target.material,
        provenance={
            "code_version": target.code_version,
            "partition_key": scope.partition_key,
            "dagster_run_id": scope.run_id,
            "upstream": target.material.get("upstream", {}),
            "compute_seconds": round(seconds, 3),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "report": report,
        },
    )
    outcome = scope.tracking.record(
        AssetRun(
            partition_key=scope.partition_key,
            asset=target.asset,
            store_key=target.key,
            dagster_run_id=scope.run_id,
            params=target.material.get("slice", {}),
            metrics={k: v for k, v in computed.metrics.items() if isinstance(v, (int, float))},
            history=computed.history,
            artifacts=sorted(p for p in entry.path.rglob("*") if p.is_file()),
            upstream_metrics=_upstream_metrics(scope.store, target.material),
        )
    )
    return remember_tracking(scope, entry, outcome), outcome


def remember_tracking(scope: RunScope, entry: StoreEntry, outcome: TrackingOutcome) -> StoreEntry:
    """Write a finished tracking outcome into the entry's manifest (a failure: a warning)."""
    if outcome.pending or (outcome.run_id is None and outcome.error is None):  # or disabled
        return entry
    if outcome.error:
        scope.log.warning(f"MLflow tracking failed, result kept in the store: {outcome.error}")
        return entry
    return scope.store.update_manifest(
        entry,
        mlflow_run_id=outcome.run_id,
        mlflow_url=outcome.url,
        mlflow_tracking_uri=scope.tracking.resolved_uri(),
        mlflow_experiment_id=outcome.experiment_id,
        mlflow_partitions=[scope.partition_key],
    )


def config_inputs(
    store: Store, node: Node, config: ExperimentConfig, partition_key: str
) -> dict[str, StoredInput]:
    """Lazy handles on the upstream results ``config``'s result of ``node`` really uses."""
    return {
        name: StoredInput(store, name, *entry_address(name, config), partition_key)
        for name in node.upstream(config)
    }


def config_asset(
    name: str,
    group: str,
    loader: Callable[[Path], Any],
    kinds: set[str] | None = None,
    pool: str | None = None,
) -> Callable[[ComputeFn], Any]:
    """Turn a compute function into a partitioned, cached Dagster asset for ``NODES[name]``.

    ``pool`` names a Dagster concurrency pool (its limit lives in the instance config).
    """
    node = NODES[name]
    LOADERS[name] = loader

    def decorate(compute: ComputeFn) -> Any:
        COMPUTE[name] = compute

        # Upstream results are deps, not inputs: nothing is loaded before the body knows it has
        # to compute (a cache hit reads no input); the body opens lazy handles on them itself.
        @asset(
            name=name,
            description=node.description,
            partitions_def=config_partitions,
            code_version=node.code_version,
            deps=list(node.inputs),
            io_manager_key="store_io_manager",
            required_resource_keys={"store", "tracking"},
            group_name=group,
            kinds=kinds,
            pool=pool,
            op_tags=training_op_tags() if pool else None,
            check_specs=dagster_check_specs(name),
        )
        def _asset(context: AssetExecutionContext) -> MaterializeResult:
            scope = RunScope.of_step(context)
            config = context.resources.store.registry().config(context.partition_key)
            inputs = Inputs(config_inputs(scope.store, node, config, scope.partition_key), LOADERS)
            target = CacheTarget.for_config(node, config)
            with ended_quietly_by_slurm():  # a job Slurm ends exits without a half step
                cached = materialize_cached(
                    scope, target, lambda: compute(config, inputs, context.log)
                )
            entry, outcomes = entry_outcomes(scope.store, cached.entry, name)
            # The entry is already stored: no value passes through the IO manager here.
            return MaterializeResult(
                data_version=DataVersion(target.key),
                metadata=step_metadata(context, target, replace(cached, entry=entry)),
                check_results=dagster_check_results(name, outcomes, entry.path),
            )

        return _asset

    return decorate
