"""``tabs-assets study``: run a study, list studies, show one."""

from pathlib import Path

import click

from tabs_assets import settings
from tabs_assets.cli.app import (
    dagster_instance,
    fail,
    main,
    open_registry,
    open_store,
    print_run_summary,
    print_studies,
    report_broken,
)
from tabs_assets.config.errors import ConfigError
from tabs_assets.graph.nodes import study_store_key
from tabs_assets.registry.records import UnknownPartitionError


@main.group()
def study() -> None:
    """Run and inspect studies (a base config + sweep + seeds, and a report)."""


@study.command(name="run")
@click.argument("target")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="split the missing members into this many steps run in parallel (multiprocess or "
    "Celery executor); 1 runs them all in this process, the cheapest per member "
    "[default: $TABS_ASSETS_STUDY_SHARDS, else 1]",
)
@click.option("--force", multiple=True, help="asset to recompute even if cached ('*' = all)")
def study_run(target: str, shards: int | None, force: tuple[str, ...]) -> None:
    """Register a study file (or take a registered study key) and materialize all of it.

    The same Dagster run as launching the study partition of the `study` job in the UI.
    """
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.defs.runs import run_problems, run_study
    from tabs_assets.registry.registration import register_file

    try:
        shards = shards or settings.study_shards()
    except ValueError as error:
        fail(str(error))
    path = Path(target)
    key = target
    if path.is_file():
        try:
            registered = register_file(open_registry(), path)
        except ConfigError as error:
            fail(str(error))
        if not registered.studies:
            fail(f"{path} is not a study file (it has no top-level 'study:' key)")
        add_partitions(dagster_instance(), registered)
        key = registered.studies[0]
    try:
        record = open_registry().study(key)
    except UnknownPartitionError as error:
        fail(str(error))
    click.echo(f"study {key}: {len(record.member_keys)} members")
    result = run_study(key, shards, force)
    print_run_summary(result, key)
    registry = open_registry()
    report_key = study_store_key("study_report", record.study, record.member_configs(registry))
    report = open_store().entry_path("study_report", report_key) / "report.md"
    if report.is_file():
        click.echo(f"report: {report}")
    if not result.success:
        problems = "".join(f"{line}\n" for line in run_problems(result))
        fail(f"{problems}run {result.run_id} failed; see the log above or the Dagster UI")


@study.command(name="list")
def study_list() -> None:
    """Registered studies: members done / total, stale members, whether the report exists."""
    from tabs_assets.cli.study_status import all_study_status

    studies, scan = all_study_status(dagster_instance(), open_registry(), open_store())
    if not studies:
        click.echo("no registered studies (tabs-assets register experiments/studies/FILE.yaml)")
    print_studies(studies)
    report_broken(scan)


@study.command(name="show")
@click.argument("key")
def study_show(key: str) -> None:
    """A registered study's members and their status, and where its report is."""
    from tabs_assets.cli.study_status import all_study_status

    studies, scan = all_study_status(dagster_instance(), open_registry(), open_store())
    found = [status for status in studies if status.key == key]
    broken = [record for record in scan.broken if record.key == key]
    if broken:
        fail(broken[0].describe())
    if not found:
        known = ", ".join(status.key for status in studies) or "none"
        fail(f"{key} is not a registered study (registered: {known})")
    status = found[0]
    click.echo(
        f"study {status.key} ({status.name}): {status.done}/{len(status.members)} members "
        f"with {status.member_asset}"
    )
    if status.report:
        click.echo(f"report: {status.report}")
    else:
        click.echo(f"report: not made yet (tabs-assets study run {status.key})")
    if status.stale:
        click.echo(
            f"stale: {len(status.stale)} member(s) re-materialized since the study table; "
            f"run `tabs-assets study run {status.key}`"
        )
    width = max(len(member.key) for member in status.members)
    for member in status.members:
        labels = ", ".join(f"{name}={value}" for name, value in member.labels.items())
        click.echo(f"  {member.key:{width}}  {member.state:8}  {labels}")
