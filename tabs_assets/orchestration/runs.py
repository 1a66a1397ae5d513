"""Runs started from the command line: one partition's assets, or a whole study, via Dagster.

The CLI only parses and prints; what a run selects and how it executes lives here.
"""

import os
from collections.abc import Sequence
from typing import Any

from tabs_assets.orchestration import settings


def instance() -> Any:
    from dagster import DagsterInstance

    settings.ensure_dagster_home()
    return DagsterInstance.get()


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
    from tabs_assets.orchestration.definitions import defs
    from tabs_assets.orchestration.partitions import config_partitions, study_partitions
    from tabs_assets.orchestration.selection import parse_selection

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
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=partition_key,
        instance=current,
        asset_selection=sorted(keys),
        run_config=_run_config(force),
        raise_on_error=False,
    )


def study_job() -> Any:
    """The `study` job, importable by the subprocesses of a parallel study run."""
    from tabs_assets.orchestration.definitions import defs

    return defs.resolve_job_def("study")


def run_study(study_key: str, shards: int = 1, force: Sequence[str] = ()) -> Any:
    """Materialize a study partition: its missing members, then the table and the report.

    One shard runs in this process (the least overhead). More shards run in parallel: on the
    multiprocess executor, or on Celery workers when $TABS_ASSETS_EXECUTOR=celery.
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
