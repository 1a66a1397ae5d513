"""The one execution path of every per-config asset: look up, or compute once, store, track.

On a hit the asset does no work and reports ``cache: hit`` with the MLflow run that made the
entry. On a miss it takes the key's lock (another process may be computing it: then this one
waits and reuses the result), computes, writes the entry atomically, then logs to MLflow. The
store key is reported to Dagster as the data version, so Dagster's staleness and the cache agree.
"""

import base64
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    BetaWarning,
    DataVersion,
    MetadataValue,
    Output,
    asset,
)

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.orchestration.executors import training_op_tags
from tabs_assets.orchestration.graph import NODES, Node, key_material, store_key
from tabs_assets.orchestration.io_manager import StoredInput, StoredRef
from tabs_assets.orchestration.partitions import config_partitions
from tabs_assets.orchestration.resources import StoreResource
from tabs_assets.orchestration.store import StoreEntry
from tabs_assets.orchestration.tracking import AssetRun, TrackingOutcome, TrackingResource

# The store key is the data version by design; Dagster marks the parameter as beta.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*data_version.*")

PREVIEW_MAX_BYTES = 300_000  # larger previews would bloat the Dagster event log


@dataclass
class Computed:
    """What a compute function returns: a payload with ``save(dir)`` and its report."""

    payload: Any
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # extra files, e.g. figures
    previews: list[str] = field(default_factory=list)  # names of PNGs shown in the Dagster UI

    def save(self, directory: Path) -> None:
        self.payload.save(directory)
        for name, data in self.files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)


class Inputs:
    """The upstream results of one asset, loaded on first use only."""

    def __init__(self, handles: Mapping[str, StoredInput], loaders: Mapping[str, Callable]) -> None:
        self._handles = handles
        self._loaders = loaders
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = self._handles[name].load(self._loaders[name])
        return self._loaded[name]

    def __contains__(self, name: str) -> bool:
        return name in self._handles


ComputeFn = Callable[[ExperimentConfig, Inputs, AssetExecutionContext], Computed]
LOADERS: dict[str, Callable[[Path], Any]] = {}


def _metadata_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return MetadataValue.text(str(value))
    return value


def _preview_markdown(entry: StoreEntry, names: list[str]) -> str:
    parts = []
    for name in names:
        data = (entry.path / name).read_bytes()
        if len(data) <= PREVIEW_MAX_BYTES:
            encoded = base64.b64encode(data).decode("ascii")
            parts.append(f"**{name}**\n\n![{name}](data:image/png;base64,{encoded})")
    return "\n\n".join(parts)


def _metadata(entry: StoreEntry, status: str, outcome: TrackingOutcome | None) -> dict[str, Any]:
    manifest = entry.manifest
    report = manifest.get("report", {})
    metadata: dict[str, Any] = {
        "cache": status,
        "store_key": entry.key,
        "store_path": MetadataValue.path(str(entry.path)),
        "code_version": manifest.get("code_version", ""),
        "compute_seconds": manifest.get("compute_seconds", 0.0),
        "size_bytes": entry.size_bytes,
        **{name: _metadata_value(value) for name, value in report.get("metrics", {}).items()},
        **{name: MetadataValue.md(table) for name, table in report.get("tables", {}).items()},
    }
    if report.get("previews"):
        metadata["previews"] = MetadataValue.md(_preview_markdown(entry, report["previews"]))
    if manifest.get("mlflow_url"):
        metadata["mlflow_run"] = MetadataValue.url(manifest["mlflow_url"])
    if outcome is not None and outcome.error:
        metadata["mlflow_error"] = outcome.error
    return metadata


@dataclass(frozen=True)
class CacheTarget:
    """Where one asset result lives and what went into its key."""

    asset: str
    store_name: str
    key: str
    material: dict[str, Any]  # the key material, written as the entry's config.yaml
    code_version: str

    @classmethod
    def for_config(cls, node: Node, config: ExperimentConfig) -> "CacheTarget":
        material = key_material(node.name, config)
        return cls(
            node.name,
            node.store_name,
            store_key(node.name, config),
            material,
            material["code_version"],  # this config's: a flow's depends on its regularization
        )


def run_cached(
    context: AssetExecutionContext, target: CacheTarget, compute: Callable[[], Computed]
) -> Output:
    """Materialize ``target`` for the context's partition through the store."""
    store_resource: StoreResource = context.resources.store
    store = store_resource.store()
    forced = store_resource.is_forced(target.asset)
    entry = None if forced else store.lookup(target.store_name, target.key)
    status, outcome = "hit", None
    if entry is None:

        def log_wait() -> None:
            context.log.info(f"{target.asset}: waiting for another process computing {target.key}")

        with store.lock(target.store_name, target.key, on_wait=log_wait):
            entry = None if forced else store.lookup(target.store_name, target.key)
            if entry is None:
                entry, outcome = _compute_and_store(context, target, compute)
                status = "forced" if forced else "miss"
            else:
                status = "hit (computed meanwhile by another process)"
    context.log.info(f"{target.asset} [{context.partition_key}]: cache {status}, key {target.key}")
    return Output(
        StoredRef(target.store_name, target.key),
        data_version=DataVersion(target.key),
        metadata=_metadata(entry, status, outcome),
    )


def _compute_and_store(
    context: AssetExecutionContext, target: CacheTarget, compute: Callable[[], Computed]
) -> tuple[StoreEntry, TrackingOutcome]:
    store_resource: StoreResource = context.resources.store
    tracking: TrackingResource = context.resources.tracking
    store = store_resource.store()
    started = time.perf_counter()
    computed = compute()
    seconds = time.perf_counter() - started
    report = {"metrics": computed.metrics, "tables": computed.tables, "previews": computed.previews}
    entry = store.write(
        target.store_name,
        target.key,
        computed.save,
        config_slice=target.material,
        provenance={
            "code_version": target.code_version,
            "partition_key": context.partition_key,
            "dagster_run_id": context.run.run_id,
            "upstream": target.material.get("upstream", {}),
            "compute_seconds": round(seconds, 3),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "report": report,
        },
    )
    outcome = tracking.record(
        AssetRun(
            partition_key=context.partition_key,
            asset=target.asset,
            store_key=target.key,
            dagster_run_id=context.run.run_id,
            params=target.material.get("slice", {}),
            metrics={k: v for k, v in computed.metrics.items() if isinstance(v, (int, float))},
            history=computed.history,
            artifacts=sorted(p for p in entry.path.rglob("*") if p.is_file()),
        )
    )
    if outcome.error:
        context.log.warning(f"MLflow tracking failed, result kept in the store: {outcome.error}")
    else:
        entry = store.update_manifest(
            entry,
            mlflow_run_id=outcome.run_id,
            mlflow_url=outcome.url,
            mlflow_tracking_uri=tracking.resolved_uri(),
        )
    return entry, outcome


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
        @asset(
            name=name,
            description=node.description,
            partitions_def=config_partitions,
            code_version=node.code_version,
            ins={upstream: AssetIn() for upstream in node.inputs},
            io_manager_key="store_io_manager",
            required_resource_keys={"store", "tracking"},
            group_name=group,
            kinds=kinds,
            pool=pool,
            op_tags=training_op_tags() if pool else None,
        )
        def _asset(context: AssetExecutionContext, **handles: StoredInput) -> Output:
            config = context.resources.store.registry().config(context.partition_key)
            used = {name: handles[name] for name in node.upstream(config)}
            inputs = Inputs(used, LOADERS)
            target = CacheTarget.for_config(node, config)
            return run_cached(context, target, lambda: compute(config, inputs, context))

        return _asset

    return decorate
