"""Commands on configs: register, unregister, list, show-config, config-reference, materialize,
quickstart."""

import os
import sys
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
from tabs_assets.config.loading import flatten
from tabs_assets.graph.nodes import NODES, entry_address
from tabs_assets.registry.records import UnknownPartitionError
from tabs_assets.store.errors import StoreError

QUICKSTART_FILE = "experiments/quickstart.yaml"


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--override", "overrides", multiple=True, help="dotted.key=value (configs)")
def register(paths: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Validate config/study files (or folders of them) and add their partitions.

    Idempotent: registering the same content again changes nothing.
    """
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.registry.registration import (
        Registered,
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
        fail("\n".join(problems) + "\nnothing was registered")
    try:
        for item in validated:
            result = record(open_registry(), item)
            registered.configs += result.configs
            registered.studies += result.studies
            kind = "study" if result.studies else "config"
            click.echo(f"{kind:6} {', '.join(result.studies or result.configs)}  <- {item.path}")
            if result.studies:
                click.echo(f"       {len(result.configs)} member configs")
        add_partitions(dagster_instance(), registered)
        _report_cached(registered.configs)
    except StoreError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write the registry under {settings.store_root()}: {error}")


def _report_cached(partition_keys: list[str]) -> None:
    """Show in Dagster what the store already holds for these partitions (issue 9)."""
    from tabs_assets.defs.reporting import report_cached

    try:
        reported = report_cached(dagster_instance(), open_registry(), open_store(), partition_keys)
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

    registry, store = open_registry(), open_store()
    studies, scan = all_study_status(dagster_instance(), registry, store)
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
    print_studies(studies)
    report_broken(scan)


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
        resolved = resolve_target(open_registry(), target, overrides)
    except (ConfigError, UnknownPartitionError, StoreError) as error:
        fail(str(error))
    flat = flatten(resolved.config.model_dump(mode="json"))
    width = max(len(k) for k in flat)
    click.echo(f"# partition key: {resolved.partition_key}")
    for key, value in flat.items():
        click.echo(f"{key:{width}}  {value!s:28}  # {resolved.sources.get(key, 'default')}")
    store = open_store()
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
        open_registry().config(partition_key)
    except UnknownPartitionError as error:
        fail(str(error))
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
        fail(problem)
    result = materialize_partition(partition_key, selection, force)
    print_run_summary(result, partition_key)
    if not result.success:
        problems = "".join(f"{line}\n" for line in run_problems(result))
        fail(f"{problems}run {result.run_id} failed; see the log above or the Dagster UI")


@main.command()
def quickstart() -> None:
    """Register experiments/quickstart.yaml and materialize its whole graph."""
    home = settings.ensure_dagster_home()
    path = settings.project_root() / QUICKSTART_FILE
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.registry.registration import register_file

    registered = register_file(open_registry(), path)
    add_partitions(dagster_instance(), registered)
    key = registered.configs[0]
    click.echo(f"registered {path} as partition {key}; materializing (first run trains models)")
    from tabs_assets.defs.runs import materialize_partition

    result = materialize_partition(key)
    click.echo(f"\nrun {result.run_id}: {'success' if result.success else 'FAILED'}")
    print_run_summary(result, key)
    root = settings.store_root()
    click.echo(f"""
a new terminal needs: source .venv/bin/activate && export DAGSTER_HOME={home}
results:   tabs-assets store show {key}   (store root {root})
Dagster:   dg dev   (or dagster dev -w workspace.yaml)   -> http://127.0.0.1:3000
MLflow:    mlflow ui --backend-store-uri sqlite:///{root / "mlflow.db"}   -> http://127.0.0.1:5000
again:     dg launch --assets '*plots' --partition {key}""")
    if not result.success:
        sys.exit(1)


@main.command(name="unregister")
@click.argument("targets", nargs=-1, required=True)
def unregister_command(targets: tuple[str, ...]) -> None:
    """Remove registered configs or studies (partition key or file): records and partitions.

    A study also removes its member configs that no other study lists and that were not
    registered on their own. Store entries are never removed (`store gc` does that).
    Works on broken records (a config that no longer validates, garbage JSON).
    """
    from tabs_assets.defs.partitions import config_partitions, remove_partitions, study_partitions
    from tabs_assets.registry.upkeep import resolve_targets, unregister

    registry, instance = open_registry(), dagster_instance()
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
                fail(f"{target}: neither a registered partition key nor a registered file")
            for definition, key in orphans:
                instance.delete_dynamic_partition(definition.name, key)
                click.echo(f"removed partition {key} (it had no registry record)")
            continue
        resolved += found
    done = unregister(registry, resolved)
    remove_partitions(instance, done.configs, done.studies)
    for key in done.studies:
        click.echo(f"unregistered study  {key}")
    for key in done.configs:
        click.echo(f"unregistered config {key}")
    for line in done.kept:
        click.echo(f"kept member {line}")
    click.echo("store entries are kept; `tabs-assets store gc` removes those nothing uses")
