"""``tabs-assets``: register configs and studies, inspect them, materialize, manage the store."""

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from tabs_assets.config.loading import ConfigError, ResolvedConfig, flatten, resolve_config
from tabs_assets.config.study import is_study_file
from tabs_assets.orchestration import settings
from tabs_assets.orchestration.graph import NODES, entry_address, study_store_key
from tabs_assets.orchestration.registry import Registry, UnknownPartitionError
from tabs_assets.orchestration.store import Store

QUICKSTART_FILE = "experiments/quickstart.yaml"


def _store() -> Store:
    return Store(settings.store_root())


def _registry() -> Registry:
    return Registry(settings.store_root())


def _instance() -> Any:
    from dagster import DagsterInstance

    settings.ensure_dagster_home()
    return DagsterInstance.get()


def _fail(message: str) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Counterfactual-explanation experiments as a cached Dagster asset graph.

    Every config file in experiments/ becomes a partition; every study file becomes a study
    partition plus one partition per member config. Results are cached in the store by content.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--override", "overrides", multiple=True, help="dotted.key=value (configs)")
def register(paths: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Validate config/study files (or folders of them) and add their partitions.

    Idempotent: registering the same content again changes nothing.
    """
    from tabs_assets.orchestration.registration import (
        Registered,
        add_partitions,
        register_file,
        yaml_files,
    )

    registered = Registered()
    try:
        for path in yaml_files(paths):
            result = register_file(_registry(), path, overrides)
            registered.configs += result.configs
            registered.studies += result.studies
            kind = "study" if result.studies else "config"
            click.echo(f"{kind:6} {', '.join(result.studies or result.configs)}  <- {path}")
            if result.studies:
                click.echo(f"       {len(result.configs)} member configs")
    except ConfigError as error:
        _fail(str(error))
    add_partitions(_instance(), registered)


def _cached_assets(config: Any, store: Store) -> dict[str, bool]:
    return {name: store.entry_path(*entry_address(name, config)).is_dir() for name in NODES}


@main.command(name="list")
def list_partitions() -> None:
    """Registered configs and studies, with which assets are cached for each."""
    registry, store = _registry(), _store()
    names = list(NODES)
    click.echo("configs (" + ", ".join(f"{i + 1}={n}" for i, n in enumerate(names)) + ")")
    for key in registry.config_keys():
        cached = _cached_assets(registry.config(key), store)
        marks = "".join("x" if cached[n] else "." for n in names)
        click.echo(f"  {key:40} [{marks}] {sum(cached.values())}/{len(names)} cached")
    click.echo("studies")
    for key in registry.study_keys():
        study = registry.study(key)
        done = sum(
            _cached_assets(registry.config(member), store)["explanation_metrics"]
            for member in study.member_keys
        )
        click.echo(f"  {key:40} {done}/{len(study.member_keys)} members with metrics")


def _resolve_target(target: str, overrides: Sequence[str]) -> ResolvedConfig:
    """A config file (+ overrides) or a registered partition key."""
    path = Path(target)
    if path.is_file():
        if is_study_file(path):
            _fail(f"{path} is a study; show one of its members by partition key instead")
        return resolve_config([path], overrides)
    record = _registry().config_record(target)
    return resolve_config([], {**record["config"], **dict(o.split("=", 1) for o in overrides)})


def derived_values(config: Any, store: Store) -> dict[str, Any] | None:
    """Values taken from the data, once the dataset is in the store (else None)."""
    from math import ceil

    from tabs_assets.config.models import BATCHES_PER_EPOCH
    from tabs_assets.science.datasets.prepared import PreparedDataset

    entry = store.lookup(*entry_address("dataset", config))
    if entry is None:
        return None
    data = PreparedDataset.load(entry.path)
    train_x, _ = data.split_arrays("train")
    n_train = len(train_x)
    values: dict[str, Any] = {
        "input_dim": data.input_dim,
        "n_classes": data.n_classes,
        "training_max_point": [round(float(v), 4) for v in train_x.max(0)],
    }
    for model in ("classifier", "generative_model", "reference_density"):
        training = getattr(config, model).training
        values[f"{model}.training.batch_size"] = training.batch_size or ceil(
            n_train / BATCHES_PER_EPOCH
        )
    return values


@main.command(name="config-reference")
def config_reference_command() -> None:
    """Print every config key with its default and meaning (Markdown)."""
    from tabs_assets.config.reference import config_reference

    click.echo(config_reference())


@main.command(name="show-config")
@click.argument("target")
@click.option("-o", "--override", "overrides", multiple=True, help="dotted.key=value")
def show_config(target: str, overrides: tuple[str, ...]) -> None:
    """Print the resolved config of a file or partition key, and where each value came from.

    Precedence: defaults < YAML file < -o overrides < values derived from the data.
    """
    try:
        resolved = _resolve_target(target, overrides)
    except (ConfigError, UnknownPartitionError) as error:
        _fail(str(error))
    flat = flatten(resolved.config.model_dump(mode="json"))
    width = max(len(k) for k in flat)
    click.echo(f"# partition key: {resolved.partition_key}")
    for key, value in flat.items():
        click.echo(f"{key:{width}}  {value!s:28}  # {resolved.sources.get(key, 'default')}")
    store = _store()
    derived = derived_values(resolved.config, store)
    click.echo("# derived from the data (highest precedence):")
    if derived is None:
        click.echo("#   (known once the dataset asset is materialized)")
    else:
        for key, value in derived.items():
            click.echo(f"{'derived.' + key:{width}}  {value!s:28}  # derived")
    click.echo("# store keys:")
    for name in NODES:
        store_name, key = entry_address(name, resolved.config)
        state = "cached" if store.entry_path(store_name, key).is_dir() else "not cached"
        click.echo(f"#   {name:22} {key}  {state}")


def materialize_partition(
    partition_key: str, selection: str = "*", force: Sequence[str] = ()
) -> Any:
    """Materialize ``selection`` of one config partition through Dagster (in process)."""
    from dagster import AssetSelection

    from tabs_assets.orchestration.definitions import defs
    from tabs_assets.orchestration.partitions import config_partitions, study_partitions

    instance = _instance()
    graph = defs.resolve_asset_graph()
    is_study = instance.has_dynamic_partition(study_partitions.name, partition_key)
    kind = study_partitions if is_study else config_partitions
    # '*' means "everything of this partition's kind": configs and studies partition differently.
    keys = {
        key
        for key in AssetSelection.from_string(selection).resolve(graph)
        if graph.get(key).partitions_def == kind
    }
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        asset_selection=sorted(keys),
        run_config={
            "resources": {"store": {"config": {"force": list(force)}}},
            # Progress (epochs, chunks, cache hits) is INFO; Dagster's step events are DEBUG.
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
        raise_on_error=False,
    )


def _print_run_summary(result: Any, partition_key: str) -> None:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = materialization.metadata
        cache = metadata["cache"].value if "cache" in metadata else "?"
        path = metadata["store_path"].value if "store_path" in metadata else ""
        name = materialization.asset_key.to_user_string()
        click.echo(f"  {name:22} cache {cache:6}  {path}")


@main.command()
@click.argument("partition_key")
@click.option(
    "--select",
    "selection",
    default="*",
    show_default=True,
    help="Dagster asset selection, e.g. '*explanation_metrics'",
)
@click.option("--force", multiple=True, help="asset to recompute even if cached ('*' = all)")
def materialize(partition_key: str, selection: str, force: tuple[str, ...]) -> None:
    """Materialize assets of a registered config partition (same as `dagster asset materialize`)."""
    try:
        _registry().config(partition_key)
    except UnknownPartitionError as error:
        _fail(str(error))
    result = materialize_partition(partition_key, selection, force)
    _print_run_summary(result, partition_key)
    if not result.success:
        _fail(f"run {result.run_id} failed; see the log above or the Dagster UI")


@main.command()
def quickstart() -> None:
    """Register experiments/quickstart.yaml and materialize its whole graph."""
    home = settings.ensure_dagster_home()
    path = settings.project_root() / QUICKSTART_FILE
    from tabs_assets.orchestration.registration import add_partitions, register_file

    registered = register_file(_registry(), path)
    add_partitions(_instance(), registered)
    key = registered.configs[0]
    click.echo(f"registered {path} as partition {key}; materializing (first run trains models)")
    result = materialize_partition(key)
    click.echo(f"\nrun {result.run_id}: {'success' if result.success else 'FAILED'}")
    _print_run_summary(result, key)
    root = settings.store_root()
    click.echo(f"""
results:   tabs-assets store show {key}   (store root {root})
Dagster:   DAGSTER_HOME={home} dagster dev -w workspace.yaml   -> http://127.0.0.1:3000
MLflow:    mlflow ui --backend-store-uri sqlite:///{root / "mlflow.db"}   -> http://127.0.0.1:5000
again:     dagster asset materialize -m tabs_assets.orchestration.definitions \\
             --select '*plots' --partition {key}""")
    if not result.success:
        sys.exit(1)


def _share_cores(workers: int) -> None:
    """Worker initializer: each of ``workers`` processes gets an equal share of the cores.

    Torch's default (all cores per process) collapses 10-20x when processes compete.
    """
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _materialize_member(partition_key: str, asset: str) -> tuple[str, bool, dict[str, str]]:
    """Run in a worker process: one member partition, in process; returns cache statuses."""
    result = materialize_partition(partition_key, f"*{asset}")
    statuses = {
        event.materialization.asset_key.path[-1]: str(event.materialization.metadata["cache"].value)
        for event in result.get_asset_materialization_events()
    }
    return partition_key, result.success, statuses


def run_study(study_key: str, max_parallel: int) -> bool:
    """Materialize every member (up to ``max_parallel`` at once), then the study report."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    registry, store_ = _registry(), _store()
    record = registry.study(study_key)
    member_asset = record.study.report.member_asset
    # A member whose metrics are stored (and verify) needs no run: reruns take seconds.
    members = [
        key
        for key in record.member_keys
        if store_.lookup(*entry_address(member_asset, registry.config(key))) is None
    ]
    click.echo(
        f"study {study_key}: {len(record.member_keys)} members, "
        f"{len(record.member_keys) - len(members)} already in the store, "
        f"{len(members)} to run ({max_parallel} in parallel)"
    )
    failed = []
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch state
    with ProcessPoolExecutor(
        max_workers=max_parallel,
        mp_context=context,
        initializer=_share_cores,
        initargs=(max_parallel,),
    ) as pool:
        futures = [pool.submit(_materialize_member, key, member_asset) for key in members]
        for done, future in enumerate(as_completed(futures), start=1):
            key, success, statuses = future.result()
            hits = sum(status.startswith("hit") for status in statuses.values())
            state = "ok" if success else "FAILED"
            click.echo(f"  [{done}/{len(members)}] {key}: {state}, {hits}/{len(statuses)} cached")
            if not success:
                failed.append(key)
    if failed:
        click.secho(f"{len(failed)} member(s) failed: {', '.join(failed)}", fg="red", err=True)
        return False
    result = materialize_partition(study_key, "group:studies")
    _print_run_summary(result, study_key)
    return result.success


@main.group()
def study() -> None:
    """Run and inspect studies (a base config + sweep + seeds, and a report)."""


@study.command(name="run")
@click.argument("target")
@click.option("--max-parallel", default=2, show_default=True, help="members run at once")
def study_run(target: str, max_parallel: int) -> None:
    """Register a study file (or take a registered study key) and materialize all of it."""
    from tabs_assets.orchestration.registration import add_partitions, register_file

    path = Path(target)
    key = target
    if path.is_file():
        try:
            registered = register_file(_registry(), path)
        except ConfigError as error:
            _fail(str(error))
        if not registered.studies:
            _fail(f"{path} is not a study file (it has no top-level 'study:' key)")
        add_partitions(_instance(), registered)
        key = registered.studies[0]
    try:
        success = run_study(key, max_parallel)
    except UnknownPartitionError as error:
        _fail(str(error))
    registry = _registry()
    record = registry.study(key)
    report_key = study_store_key("study_report", record.study, record.member_configs(registry))
    report = _store().entry_path("study_report", report_key) / "report.md"
    if report.is_file():
        click.echo(f"report: {report}")
    if not success:
        sys.exit(1)


@main.group()
def store() -> None:
    """Inspect and clean the content-addressed store."""


@store.command(name="list")
def store_list() -> None:
    """Every entry: asset, key, size, creation time, partition that made it."""
    for entry in _store().entries():
        m = entry.manifest
        click.echo(
            f"{entry.asset:22} {entry.key}  {entry.size_bytes / 1e6:8.2f} MB  "
            f"{m.get('created', '?')}  {m.get('partition_key', '?')}"
        )


@store.command(name="show")
@click.argument("partition_key")
def store_show(partition_key: str) -> None:
    """The entries a partition uses, whether each is cached, and its MLflow run."""
    try:
        config = _registry().config(partition_key)
    except UnknownPartitionError as error:
        _fail(str(error))
    store_ = _store()
    for name in NODES:
        store_name, key = entry_address(name, config)
        path = store_.entry_path(store_name, key)
        if not path.is_dir():
            click.echo(f"{name:22} {key}  not cached")
            continue
        entry = store_.verify(store_name, key)
        click.echo(f"{name:22} {key}  {path}")
        metrics = entry.manifest.get("report", {}).get("metrics", {})
        if metrics:
            click.echo(
                "    "
                + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items()
                )
            )
        if entry.manifest.get("mlflow_url"):
            click.echo(f"    mlflow: {entry.manifest['mlflow_url']}")


@store.command(name="gc")
@click.option("--dry-run", is_flag=True, help="only list what would be removed")
def store_gc(dry_run: bool) -> None:
    """Remove entries no registered config uses (with the current code) and stale temp dirs."""
    registry = _registry()
    referenced = {
        entry_address(name, registry.config(key))
        for key in registry.config_keys()
        for name in NODES
    }
    removed = _store().garbage_collect(referenced, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path in removed:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(removed)} entries")
