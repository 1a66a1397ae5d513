"""``tabs-assets store``: list, show and clean the content-addressed store."""

import click

from tabs_assets.cli.app import (
    fail,
    main,
    open_registry,
    open_store,
    report_broken,
)
from tabs_assets.config.errors import ConfigError
from tabs_assets.graph.nodes import NODES, entry_address
from tabs_assets.registry.records import UnknownPartitionError
from tabs_assets.store.errors import StoreError


@main.group()
def store() -> None:
    """Inspect and clean the content-addressed store."""


@store.command(name="list")
def store_list() -> None:
    """Every entry: asset, key, size, creation time, partition that made it."""
    for entry in open_store().entries():
        m = entry.manifest
        click.echo(
            f"{entry.asset:22} {entry.key}  {entry.size_bytes / 1e6:8.2f} MB  "
            f"{m.get('created', '?')}  {m.get('partition_key', '?')}"
        )


@store.command(name="show")
@click.argument("partition_key")
def store_show(partition_key: str) -> None:
    """The entries a partition uses, whether each is cached, and its MLflow run."""
    from tabs_assets.science.datasets.tabular import DatasetError
    from tabs_assets.ui.describe import format_value

    try:
        config = open_registry().config(partition_key)
        addresses = {name: entry_address(name, config) for name in NODES}
    except (UnknownPartitionError, ConfigError, StoreError, DatasetError) as error:
        fail(str(error))
    store_ = open_store()
    for name in NODES:
        store_name, key = addresses[name]
        path = store_.entry_path(store_name, key)
        if not path.is_dir():
            click.echo(f"{name:22} {key}  not cached")
            continue
        entry = store_.verify(store_name, key)
        click.echo(f"{name:22} {key}  {path}")
        metrics = entry.manifest.get("report", {}).get("metrics", {})
        if metrics:
            # Counts as integers (n_paths=19200, not 1.92e+04), other floats to 4 digits.
            click.echo("    " + ", ".join(f"{k}={format_value(v)}" for k, v in metrics.items()))
        if entry.manifest.get("mlflow_url"):
            click.echo(f"    mlflow: {entry.manifest['mlflow_url']}")


@store.command(name="gc")
@click.option("--dry-run", is_flag=True, help="only list what would be removed, and why")
@click.option(
    "--min-temp-age",
    default=3600.0,
    show_default=True,
    help="seconds before a temporary folder counts as a killed writer's leftover",
)
@click.option("--verbose", is_flag=True, help="also list what is kept as not the store's")
def store_gc(dry_run: bool, min_temp_age: float, verbose: bool) -> None:
    """Remove entries no registered config or study uses (with the current code).

    Touches only the asset folders' entries and the store's own temporary folders of killed
    writers. Keeps every entry a registered config or study uses, every entry made by a
    partition whose registry record is broken (its keys cannot be computed), and everything
    that is not the store's (MLflow's database and artifacts, raw downloads, your files);
    never follows a symlink. Says what it removes and why.
    """
    from tabs_assets.registry.upkeep import collect_garbage

    report = collect_garbage(open_registry(), open_store(), dry_run, min_temp_age_s=min_temp_age)
    report_broken(report.scan)
    verb = "would remove" if dry_run else "removed"
    failed = {item.path for item in report.failed}
    for item in report.plan.remove:
        if item.path not in failed:
            click.echo(f"{verb} {item.path}  ({item.reason})")
    foreign = [item for item in report.plan.skipped if item.foreign]
    for item in report.plan.skipped:
        if dry_run or verbose or not item.foreign:
            click.echo(f"kept {item.path}  ({item.reason})")
    if foreign and not (dry_run or verbose):
        click.echo(f"kept {len(foreign)} path(s) that are not the store's (--verbose lists them)")
    done = len(report.plan.remove) - len(report.failed)
    click.echo(
        f"{verb} {done} path(s); in use by {len(report.scan.configs)} config(s) and "
        f"{len(report.scan.studies)} study(ies)"
    )
    if report.failed:
        for item in report.failed:
            click.secho(f"could not remove {item.path}: {item.reason}", fg="red", err=True)
        fail(f"store gc: {len(report.failed)} path(s) could not be removed")
