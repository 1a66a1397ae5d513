"""Runs started from the command line: one partition's assets, or a whole study, via Dagster.

The CLI only parses and prints; what a run selects and how it executes lives here.
"""

import os
from collections.abc import Sequence
from functools import cache
from typing import Any

from tabs_assets import settings


def instance() -> Any:
    """The Dagster instance of $DAGSTER_HOME, opened once per process and home (opening one
    checks the storage schemas: a noticeable part of a short command)."""
    return _instance_at(str(settings.ensure_dagster_home()))


@cache
def _instance_at(home: str) -> Any:
    from dagster import DagsterInstance

    return DagsterInstance.from_config(home)


def _run_config(force: Sequence[str], shards: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "resources": {"store": {"config": {"force": list(force)}}},
        # Progress (epochs, chunks, members, cache hits) is INFO; Dagster's step events DEBUG.
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    if shards is not None:
        config["ops"] = {
            "study_members": {"ops": {"plan_study_members": {"config": {"shards": shards}}}}
        }
    return config


def materialize_partition(
    partition_key: str, selection: str = "*", force: Sequence[str] = ()
) -> Any:
    """Materialize ``selection`` of one config or study partition through Dagster (in process)."""
    from tabs_assets.defs.definitions import defs
    from tabs_assets.defs.partitions import config_partitions, study_partitions
    from tabs_assets.defs.selection import parse_selection

    current = instance()
    graph = defs.resolve_asset_graph()
    is_study = current.has_dynamic_partition(study_partitions.name, partition_key)
    kind = study_partitions if is_study else config_partitions
    # '*' means "everything of this partition's kind": configs and studies partition differently.
    keys = {
        key
        for key in parse_selection(selection).resolve(graph)
        if graph.get(key).partitions_def == kind
    }
    if settings.executor_name() == "in_process":
        job = defs.resolve_implicit_global_asset_job_def()
        return job.execute_in_process(
            partition_key=partition_key,
            instance=current,
            asset_selection=sorted(keys),
            run_config=_run_config(force),
            raise_on_error=False,
        )
    from dagster import execute_job, reconstructable

    # Any other executor (Slurm, Celery, multiprocess) launches its steps from a job that
    # other processes can load again.
    return execute_job(
        reconstructable(study_job if is_study else config_graph_job),
        current,
        asset_selection=sorted(keys),
        run_config=_run_config(force),
        tags={"dagster/partition": partition_key},
    )


def config_graph_job() -> Any:
    """The `config_graph` job, importable by the processes that run its steps."""
    from tabs_assets.defs.definitions import defs

    return defs.resolve_job_def("config_graph")


def study_job() -> Any:
    """The `study` job, importable by the processes that run its steps."""
    from tabs_assets.defs.definitions import defs

    return defs.resolve_job_def("study")


def run_study(study_key: str, shards: int = 1, force: Sequence[str] = ()) -> Any:
    """Materialize a study partition: its missing members, then the table and the report.

    One shard runs in this process (the least overhead). More shards run in parallel: on the
    multiprocess executor, on Celery workers when $TABS_ASSETS_EXECUTOR=celery, or as a Slurm
    job array when $TABS_ASSETS_EXECUTOR=slurm.
    """
    if shards <= 1:
        return materialize_partition(study_key, "group:studies", force)
    from dagster import execute_job, reconstructable

    if settings.executor_name() == "in_process":
        os.environ[settings.EXECUTOR_ENV] = "multiprocess"  # read by the run's processes
    return execute_job(
        reconstructable(study_job),
        instance(),
        run_config=_run_config(force, shards),
        tags={"dagster/partition": study_key},
    )


def ensure_partition(partition_key: str) -> bool:
    """Add a registered config's partition missing from the instance (another DAGSTER_HOME, a
    reset instance) rather than fail with DagsterUnknownPartitionError; True if it was added."""
    from tabs_assets.defs.partitions import config_partitions

    current = instance()
    if current.has_dynamic_partition(config_partitions.name, partition_key):
        return False
    current.add_dynamic_partitions(config_partitions.name, [partition_key])
    return True


def unwritable_store(partition_key: str, selection: str, force: Sequence[str]) -> str | None:
    """Why the run cannot store what it must compute, before it starts (a read-only store still
    serves a fully cached run); None when it can."""
    from tabs_assets.defs.definitions import defs
    from tabs_assets.defs.resources import FORCE_ALL
    from tabs_assets.defs.selection import parse_selection
    from tabs_assets.graph.nodes import NODES, entry_address
    from tabs_assets.registry.records import Registry
    from tabs_assets.store.entries import Store

    config = Registry(settings.store_root()).config(partition_key)
    store = Store(settings.store_root())
    selected = {
        key.path[-1] for key in parse_selection(selection).resolve(defs.resolve_asset_graph())
    }
    for name in (n for n in NODES if n in selected):
        folder, key = entry_address(name, config)
        if store.entry_path(folder, key).is_dir() and not ({name, FORCE_ALL} & set(force)):
            continue
        target = store.root / folder
        target = target if target.is_dir() else store.root
        if not os.access(target, os.W_OK):
            return (
                f"{name} of {partition_key} is not cached and the store cannot be written: "
                f"{target} is read-only. Make it writable or point $TABS_ASSETS_STORE at a "
                f"writable folder; cached results can still be read."
            )
    return None


# Errors whose message says what to do: printed alone, without a traceback.
USER_ERRORS = {"StoreError", "LockTimeoutError", "SlurmError"}


def run_problems(result: Any) -> list[str]:
    """The messages of a failed run that the user must act on: the store's (read-only or full
    disk, a lock held too long) and Slurm's (a refused job, a job cancelled or timed out)."""
    messages = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            # No class: reported by the executor itself (a Slurm job's failed health check).
            if error.cls_name in USER_ERRORS or error.cls_name is None:
                text = error.message.strip().split(f"{error.cls_name}: ", 1)[-1]
                messages.append(f"{event.step_key}: {text}")
                break
            error = error.cause
    return list(dict.fromkeys(messages))
