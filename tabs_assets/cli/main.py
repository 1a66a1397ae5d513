"""``tabs-assets``: register configs and studies, inspect them, materialize, manage the store."""

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from tabs_assets import settings
from tabs_assets.config.loading import (
    ConfigError,
    flatten,
)
from tabs_assets.graph.nodes import NODES, entry_address, study_store_key
from tabs_assets.registry.records import Registry, UnknownPartitionError
from tabs_assets.store.entries import Store, StoreError

QUICKSTART_FILE = "experiments/quickstart.yaml"


def _store() -> Store:
    return Store(settings.store_root())


def _registry() -> Registry:
    return Registry(settings.store_root())


def _instance() -> Any:
    from tabs_assets.defs.runs import instance

    return instance()


def _fail(message: str) -> None:
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
            _fail(str(error))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
    from tabs_assets.registry.registration import (
        Registered,
        add_partitions,
        record,
        validate_file,
        yaml_files,
    )

    registered = Registered()
    problems: list[str] = []
    validated = []
    # Every file is checked before anything is written: one bad file registers nothing.
    for path in yaml_files(paths):
        try:
            validated.append(validate_file(path, overrides))
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        _fail("\n".join(problems) + "\nnothing was registered")
    try:
        for item in validated:
            result = record(_registry(), item)
            registered.configs += result.configs
            registered.studies += result.studies
            kind = "study" if result.studies else "config"
            click.echo(f"{kind:6} {', '.join(result.studies or result.configs)}  <- {item.path}")
            if result.studies:
                click.echo(f"       {len(result.configs)} member configs")
        add_partitions(_instance(), registered)
        _report_cached(registered.configs)
    except StoreError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot write the registry under {settings.store_root()}: {error}")


def _report_cached(partition_keys: list[str]) -> None:
    """Show in Dagster what the store already holds for these partitions (issue 9)."""
    from tabs_assets.defs.reporting import report_cached

    try:
        reported = report_cached(_instance(), _registry(), _store(), partition_keys)
    except Exception as error:  # the registration itself succeeded
        click.echo(f"warning: cached results not reported to Dagster: {error}", err=True)
        return
    if reported:
        click.echo(f"       {reported} cached result(s) shown as materialized in Dagster")


@main.command(name="list")
def list_partitions() -> None:
    """Registered configs and studies, with which assets are cached for each.

    Each config also shows its asset checks (those that read only the manifests) and names
    the failed ones.
    """
    from tabs_assets.cli.study_status import all_study_status
    from tabs_assets.defs.checks import check_results
    from tabs_assets.registry.upkeep import cached_assets

    registry, store = _registry(), _store()
    studies, scan = all_study_status(_instance(), registry, store)
    names = list(NODES)
    click.echo("configs (" + ", ".join(f"{i + 1}={n}" for i, n in enumerate(names)) + ")")
    for key, config in scan.configs.items():
        cached = cached_assets(config, store)
        marks = "".join("x" if cached[n] else "." for n in names)
        results = check_results(config, store, include_payload=False)
        passed = sum(outcome.passed for outcome in results.values())
        click.echo(
            f"  {key:40} [{marks}] {sum(cached.values())}/{len(names)} cached, "
            f"checks {passed}/{len(results)} passed"
        )
        for name, (ok, severity, message) in results.items():
            if not ok:
                click.echo(f"      {severity} {name}: {message}")
    click.echo("studies")
    _print_studies(studies)
    _report_broken(scan)


def _print_studies(studies: list[Any]) -> None:
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


def _report_broken(scan: Any) -> None:
    """Broken registry records are skipped by every command and listed here (stderr)."""
    if scan.broken:
        click.secho(f"{len(scan.broken)} broken registry record(s) skipped:", fg="yellow", err=True)
        for broken in scan.broken:
            click.secho(f"  {broken.describe()}", fg="yellow", err=True)


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
    from tabs_assets.registry.registration import resolve_target

    try:
        resolved = resolve_target(_registry(), target, overrides)
    except (ConfigError, UnknownPartitionError, StoreError) as error:
        _fail(str(error))
    flat = flatten(resolved.config.model_dump(mode="json"))
    width = max(len(k) for k in flat)
    click.echo(f"# partition key: {resolved.partition_key}")
    for key, value in flat.items():
        click.echo(f"{key:{width}}  {value!s:28}  # {resolved.sources.get(key, 'default')}")
    store = _store()
    from tabs_assets.cli.derived import derived_values

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


def _print_run_summary(result: Any, partition_key: str) -> None:
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
    from tabs_assets.defs.runs import (
        ensure_partition,
        materialize_partition,
        run_problems,
        unwritable_store,
    )

    if ensure_partition(partition_key):
        click.secho(
            f"partition {partition_key} is registered in {settings.store_root()} but was missing "
            f"from the Dagster instance at {os.environ.get('DAGSTER_HOME')}; added it",
            fg="yellow",
            err=True,
        )
    problem = unwritable_store(partition_key, selection, force)
    if problem:
        _fail(problem)
    result = materialize_partition(partition_key, selection, force)
    _print_run_summary(result, partition_key)
    if not result.success:
        problems = "".join(f"{line}\n" for line in run_problems(result))
        _fail(f"{problems}run {result.run_id} failed; see the log above or the Dagster UI")


@main.command()
def quickstart() -> None:
    """Register experiments/quickstart.yaml and materialize its whole graph."""
    home = settings.ensure_dagster_home()
    path = settings.project_root() / QUICKSTART_FILE
    from tabs_assets.registry.registration import add_partitions, register_file

    registered = register_file(_registry(), path)
    add_partitions(_instance(), registered)
    key = registered.configs[0]
    click.echo(f"registered {path} as partition {key}; materializing (first run trains models)")
    from tabs_assets.defs.runs import materialize_partition

    result = materialize_partition(key)
    click.echo(f"\nrun {result.run_id}: {'success' if result.success else 'FAILED'}")
    _print_run_summary(result, key)
    root = settings.store_root()
    click.echo(f"""
a new terminal needs: source .venv/bin/activate && export DAGSTER_HOME={home}
results:   tabs-assets store show {key}   (store root {root})
Dagster:   dagster dev -w workspace.yaml   -> http://127.0.0.1:3000
MLflow:    mlflow ui --backend-store-uri sqlite:///{root / "mlflow.db"}   -> http://127.0.0.1:5000
again:     dagster asset materialize -m tabs_assets.defs.definitions \\
             --select '*plots' --partition {key}""")
    if not result.success:
        sys.exit(1)


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
    from tabs_assets.defs.runs import run_problems, run_study
    from tabs_assets.registry.registration import add_partitions, register_file

    try:
        shards = shards or settings.study_shards()
    except ValueError as error:
        _fail(str(error))
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
        record = _registry().study(key)
    except UnknownPartitionError as error:
        _fail(str(error))
    click.echo(f"study {key}: {len(record.member_keys)} members")
    result = run_study(key, shards, force)
    _print_run_summary(result, key)
    registry = _registry()
    report_key = study_store_key("study_report", record.study, record.member_configs(registry))
    report = _store().entry_path("study_report", report_key) / "report.md"
    if report.is_file():
        click.echo(f"report: {report}")
    if not result.success:
        problems = "".join(f"{line}\n" for line in run_problems(result))
        _fail(f"{problems}run {result.run_id} failed; see the log above or the Dagster UI")


@study.command(name="list")
def study_list() -> None:
    """Registered studies: members done / total, stale members, whether the report exists."""
    from tabs_assets.cli.study_status import all_study_status

    studies, scan = all_study_status(_instance(), _registry(), _store())
    if not studies:
        click.echo("no registered studies (tabs-assets register experiments/studies/FILE.yaml)")
    _print_studies(studies)
    _report_broken(scan)


@study.command(name="show")
@click.argument("key")
def study_show(key: str) -> None:
    """A registered study's members and their status, and where its report is."""
    from tabs_assets.cli.study_status import all_study_status

    studies, scan = all_study_status(_instance(), _registry(), _store())
    found = [status for status in studies if status.key == key]
    broken = [record for record in scan.broken if record.key == key]
    if broken:
        _fail(broken[0].describe())
    if not found:
        known = ", ".join(status.key for status in studies) or "none"
        _fail(f"{key} is not a registered study (registered: {known})")
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
    from tabs_assets.science.datasets.tabular import DatasetError
    from tabs_assets.ui.presentation import format_value

    try:
        config = _registry().config(partition_key)
        addresses = {name: entry_address(name, config) for name in NODES}
    except (UnknownPartitionError, ConfigError, StoreError, DatasetError) as error:
        _fail(str(error))
    store_ = _store()
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

    report = collect_garbage(_registry(), _store(), dry_run, min_temp_age_s=min_temp_age)
    _report_broken(report.scan)
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
        _fail(f"store gc: {len(report.failed)} path(s) could not be removed")


@main.command(name="unregister")
@click.argument("targets", nargs=-1, required=True)
def unregister_command(targets: tuple[str, ...]) -> None:
    """Remove registered configs or studies (partition key or file): records and partitions.

    A study also removes its member configs that no other study lists and that were not
    registered on their own. Store entries are never removed (`store gc` does that).
    Works on broken records (a config that no longer validates, garbage JSON).
    """
    from tabs_assets.defs.partitions import config_partitions, study_partitions
    from tabs_assets.registry.upkeep import resolve_targets, unregister

    registry, instance = _registry(), _instance()
    resolved: list[tuple[str, str]] = []
    for target in targets:
        found = resolve_targets(registry, target)
        if not found:
            orphans = [
                (definition, target)
                for definition in (config_partitions, study_partitions)
                if instance.has_dynamic_partition(definition.name, target)
            ]
            if not orphans:
                _fail(f"{target}: neither a registered partition key nor a registered file")
            for definition, key in orphans:
                instance.delete_dynamic_partition(definition.name, key)
                click.echo(f"removed partition {key} (it had no registry record)")
            continue
        resolved += found
    done = unregister(registry, resolved, instance)
    for key in done.studies:
        click.echo(f"unregistered study  {key}")
    for key in done.configs:
        click.echo(f"unregistered config {key}")
    for line in done.kept:
        click.echo(f"kept member {line}")
    click.echo("store entries are kept; `tabs-assets store gc` removes those nothing uses")
