"""study_members: a study's missing members planned into shards, each shard run in one step, the
study's member record stored (see defs/study_run.py for how a shard runs its members)."""

import json
from dataclasses import replace
from typing import Any

from dagster import (
    Config,
    DynamicOut,
    DynamicOutput,
    Failure,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)
from pydantic import Field

from tabs_assets import settings

# Importing the config assets registers their compute functions for the member runner.
from tabs_assets.defs.assets import dataset, explanations, models, plots  # noqa: F401
from tabs_assets.defs.assets.member_events import member_reporter
from tabs_assets.defs.cached import CacheTarget, RunScope, run_cached
from tabs_assets.defs.compute import Computed
from tabs_assets.defs.partitions import study_partitions
from tabs_assets.defs.resources import StoreResource
from tabs_assets.defs.slurm.job_entry import ended_quietly_by_slurm
from tabs_assets.defs.study_run import (
    NOTHING_TO_RUN,
    MemberLog,
    MemberRunner,
    ProgressLog,
    TrackingQueue,
    json_statuses,
    member_summary,
    members_to_run,
    shard_members,
)
from tabs_assets.defs.tags import training_op_tags
from tabs_assets.graph.nodes import (
    study_code_version,
    study_key_material,
)
from tabs_assets.registry.records import StudyRecord

RESOURCES = {"store", "tracking"}


def study_target(context: OpExecutionContext, asset_name: str) -> tuple[StudyRecord, CacheTarget]:
    store: StoreResource = context.resources.store
    registry = store.registry()
    record = registry.study(context.partition_key)
    material = study_key_material(asset_name, record.study, record.member_configs(registry))
    return record, CacheTarget.from_material(asset_name, asset_name, material)


class StudyRunConfig(Config):
    shards: int = Field(
        0,
        ge=0,
        description=f"steps the missing members are split into (run in parallel by the "
        f"multiprocess or Celery executor); 0 = ${settings.STUDY_SHARDS_ENV}, default 1",
    )


@op(out=DynamicOut(list), required_resource_keys=RESOURCES)
def plan_study_members(context: OpExecutionContext, config: StudyRunConfig) -> Any:
    """The members not in the store yet, in shards of members sharing upstream results."""
    store: StoreResource = context.resources.store
    registry = store.registry()
    record = registry.study(context.partition_key)
    forced = bool(store.force)
    todo = members_to_run(registry, store.store(), record, include_cached=forced)
    asset = record.study.report.member_asset
    shards = shard_members(registry, todo, config.shards or settings.study_shards(), asset)
    context.log.info(
        f"study {record.key}: {len(record.member_keys)} members, "
        f"{len(record.member_keys) - len(todo)} already in the store, {len(todo)} to run "
        f"in {len(shards)} shard(s)"
    )
    # An empty shard keeps the graph whole: collecting zero outputs would skip the record step.
    if not shards:
        yield DynamicOutput([], mapping_key=NOTHING_TO_RUN)
    for index, members in enumerate(shards):
        yield DynamicOutput(members, mapping_key=f"shard_{index}")


@op(required_resource_keys=RESOURCES, tags=training_op_tags())
def materialize_study_shard(context: OpExecutionContext, members: list) -> list:
    """Every member of one shard, one after another in this step's process."""
    store: StoreResource = context.resources.store
    registry = store.registry()
    record = registry.study(context.partition_key)
    step_scope = RunScope.of_step(context)

    tracking = TrackingQueue(step_scope.tracking)

    def scope_for(partition_key: str) -> RunScope:
        log = MemberLog(step_scope.log, partition_key)
        return replace(
            step_scope, tracking=tracking, partition_key=partition_key, log=log, durable=False
        )

    report = member_reporter(context, registry, step_scope.store)
    runner = MemberRunner(registry, scope_for, report, tracking)
    outcomes = []
    progress = ProgressLog(len(members))
    try:
        with ended_quietly_by_slurm():  # a job Slurm ends: no half-reported shard
            for outcome in runner.run_all(members, record.study.report.member_asset):
                outcomes.append(json_statuses(outcome))
                if outcome.error:
                    context.log.error(member_summary(outcome, len(outcomes), len(members)))
                elif progress.due(len(outcomes)):
                    context.log.info(member_summary(outcome, len(outcomes), len(members)))
    finally:
        tracking.close()
    return outcomes


@op(out=Out(io_manager_key="store_io_manager"), required_resource_keys=RESOURCES)
def record_study_members(context: OpExecutionContext, shards: list) -> Output:
    """The study's member list with the store key of each member's result."""
    from tabs_assets.science.records import Record

    failed = [m for shard in shards for m in shard if m["error"]]
    if failed:
        raise Failure(
            f"{len(failed)} member(s) failed; the others are stored: "
            + "; ".join(f"{m['partition_key']}: {m['error']}" for m in failed[:5])
        )
    record, target = study_target(context, "study_members")
    ran = sum(len(shard) for shard in shards)

    def compute() -> Computed:
        return Computed(
            payload=Record({"members": target.material["upstream"]}),
            metrics={"members": len(record.member_keys), "run_now": ran},
            tables={"members": _member_table(record)},
        )

    return run_cached(context, target, compute)


def _member_table(record: StudyRecord) -> str:
    from tabs_assets.ui.markdown import markdown_table

    labels = sorted({label for member in record.members for label in member["labels"]})
    rows = [
        [member["partition_key"], *(json.dumps(member["labels"].get(k)) for k in labels)]
        for member in record.members
    ]
    return markdown_table(["partition", *labels], rows)


@graph_asset(
    name="study_members",
    description="Every member config of the study materialized (up to the report's "
    "member_asset); members already in the store cost a lookup.",
    partitions_def=study_partitions,
    group_name="studies",
    code_version=study_code_version("study_members"),
    kinds={"dagster"},
)
def study_members() -> Any:
    shards = plan_study_members().map(materialize_study_shard)
    return record_study_members(shards.collect())
