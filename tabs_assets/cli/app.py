"""The ``tabs-assets`` command group and what its commands share: the store, the registry, the
Dagster instance, and errors as messages (exit code 2), never tracebacks."""

import sys
from collections import Counter
from typing import Any

import click

from tabs_assets import settings
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets.store.errors import StoreError


def open_store() -> Store:
    return Store(settings.store_root())


def open_registry() -> Registry:
    return Registry(settings.store_root())


def dagster_instance() -> Any:
    from tabs_assets.defs.runs import instance

    return instance()


def fail(message: str) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(2)


class _Main(click.Group):
    """A store that cannot be written, a lock held too long, a bad setting: a message, never a
    traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            settings.check()
            return super().invoke(ctx)
        except (StoreError, settings.SettingError) as error:
            fail(str(error))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Counterfactual-explanation experiments as a cached Dagster asset graph.

    Every config file in experiments/ becomes a partition; every study file becomes a study
    partition plus one partition per member config. Results are cached in the store by content.
    """


def report_broken(scan: Any) -> None:
    """Broken registry records are skipped by every command and listed here (stderr)."""
    if scan.broken:
        click.secho(f"{len(scan.broken)} broken registry record(s) skipped:", fg="yellow", err=True)
        for broken in scan.broken:
            click.secho(f"  {broken.describe()}", fg="yellow", err=True)


def print_run_summary(result: Any, partition_key: str) -> None:
    """The run's materializations of ``partition_key``; a study's member results, counted."""
    members: Counter[str] = Counter()
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        name = materialization.asset_key.to_user_string()
        if materialization.partition != partition_key:
            members[name] += 1
            continue
        metadata = materialization.metadata
        cache = metadata["cache"].value if "cache" in metadata else "?"
        path = metadata["store_path"].value if "store_path" in metadata else ""
        click.echo(f"  {name:22} cache {cache:6}  {path}")
    if members:
        counts = ", ".join(f"{name} {count}" for name, count in members.items())
        click.echo(f"  member results computed in this run: {counts}")


def print_studies(studies: list[Any]) -> None:
    """One line per study (members done / total), and its stale members if any."""
    for status in studies:
        click.echo(
            f"  {status.key:40} {status.done}/{len(status.members)} members with "
            f"{status.member_asset}, report {'made' if status.report else 'not made'}"
        )
        if status.stale:
            click.echo(
                f"      stale: {len(status.stale)} member(s) re-materialized since the study "
                f"table (e.g. {status.stale[0]}); run `tabs-assets study run {status.key}`"
            )
