"""Study assets (one partition per study): members -> table -> report, one Dagster action.

``study_members`` materializes every member config that is not in the store yet, inside a few
steps rather than a run per member (see study_run.py): a planning step splits the missing
members into shards, one step per shard runs them (in this process, in subprocesses or on Celery
workers, as the executor decides) and reports each member's materializations to Dagster. The
table then reads only the study's own members, by their store keys.
"""

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    Config,
    DynamicOut,
    DynamicOutput,
    Failure,
    OpExecutionContext,
    Out,
    Output,
    asset,
    graph_asset,
    op,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
)
from pydantic import Field

from tabs_assets.orchestration import settings

# Importing the config assets registers their compute functions for the member runner.
from tabs_assets.orchestration.assets import dataset, explanations, models, plots  # noqa: F401
from tabs_assets.orchestration.cached import (
    Cached,
    CacheTarget,
    Computed,
    Inputs,
    RunScope,
    config_words,
    metadata_for,
    run_cached,
)
from tabs_assets.orchestration.checks import entry_outcomes, specs_of
from tabs_assets.orchestration.executors import training_op_tags
from tabs_assets.orchestration.graph import (
    NODES,
    entry_address,
    study_code_version,
    study_key_material,
)
from tabs_assets.orchestration.io_manager import StoredInput
from tabs_assets.orchestration.partitions import study_partitions
from tabs_assets.orchestration.registry import Registry, StudyRecord
from tabs_assets.orchestration.resources import StoreResource
from tabs_assets.orchestration.slurm_job import ended_quietly_by_slurm
from tabs_assets.orchestration.store import Store
from tabs_assets.orchestration.study_run import (
    MemberLog,
    MemberOutcome,
    MemberRunner,
    ProgressLog,
    ReportFn,
    TrackingQueue,
    json_statuses,
    member_summary,
    members_to_run,
    shard_members,
)

RESOURCES = {"store", "tracking"}
# The one shard planned when every member is stored: it keeps the graph whole and does nothing
# (the Slurm executor runs it in the run's process rather than as a job).
NOTHING_TO_RUN = "nothing_to_run"


def load_study_table(path: Path) -> Any:
    from tabs_assets.science.study_tables import StudyTable

    return StudyTable.load(path)


def _study_target(context: OpExecutionContext, asset_name: str) -> tuple[StudyRecord, CacheTarget]:
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


# Member events are written in batches, one SQLite transaction each with the storage of
# dagster.yaml (orchestration/event_log.py); Dagster batches only when this is set.
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"


def _member_materialization(
    asset: str,
    outcome: MemberOutcome,
    cached: Cached,
    pointers: dict[tuple[str, str], int],
    words: dict[str, str],
) -> AssetMaterialization:
    """A member's result as a normal run reports it: the store key as data version, the code
    version, and the data version and event of each upstream result it was built from (Dagster's
    provenance, which its staleness rules read)."""
    key = outcome.partition_key
    tags = {DATA_VERSION_TAG: cached.entry.key, CODE_VERSION_TAG: NODES[asset].code_version}
    for upstream in NODES[asset].inputs:
        if upstream in outcome.results:
            tags[f"{INPUT_DATA_VERSION_TAG_PREFIX}/{upstream}"] = outcome.results[
                upstream
            ].entry.key
        if (upstream, key) in pointers:
            tags[f"{INPUT_EVENT_POINTER_TAG_PREFIX}/{upstream}"] = str(pointers[(upstream, key)])
    metadata = metadata_for(cached, words)
    if not cached.computed:  # a shared result: its thumbnails are on the run that made it
        metadata.pop("previews", None)
    return AssetMaterialization(asset_key=asset, partition=key, metadata=metadata, tags=tags)


def _check_evaluations(asset: str, key: str, outcomes: dict[str, Any]) -> list[Any]:
    from dagster import AssetCheckEvaluation, AssetCheckSeverity

    specs = {spec.name: spec for spec in specs_of(asset)}
    return [
        AssetCheckEvaluation(
            asset_key=AssetKey(asset),
            check_name=name,
            passed=outcome.passed,
            severity=AssetCheckSeverity(outcome.severity),
            description=outcome.message,
            blocking=specs[name].blocking,
            partition=key,
        )
        for name, outcome in outcomes.items()
    ]


def _log_batch(context: OpExecutionContext, events: list[Any]) -> None:
    """Write ``events`` now (not when the step ends, as ``context.log_event`` does), as one
    Dagster event batch."""
    from dagster._core.events import (
        DagsterEvent,
        DagsterEventBatchMetadata,
        DagsterEventType,
        generate_event_batch_id,
    )

    step_context = context.get_step_execution_context()
    batch_id = generate_event_batch_id()
    for index, event in enumerate(events):
        batch = DagsterEventBatchMetadata(batch_id, index == len(events) - 1)
        if isinstance(event, AssetMaterialization):
            DagsterEvent.asset_materialization(step_context, event, batch)
        else:
            DagsterEvent.from_step(
                DagsterEventType.ASSET_CHECK_EVALUATION,
                step_context,
                event_specific_data=event,
                batch_metadata=batch,
            )


def _reporter(context: OpExecutionContext, registry: Registry, store: Store) -> ReportFn:
    """Reports ready members to Dagster, asset by asset (upstream first, so each result can
    point at the events of the results it was built from): every asset of every member with
    its check results, exactly as a per-config run of that member would."""
    from dagster._core.events import DagsterEventType

    os.environ.setdefault(EVENT_BATCH_SIZE_ENV, "100000")
    storage = context.instance.event_log_storage

    def report(outcomes: list[MemberOutcome]) -> None:
        store.sync()  # the members' entries were written without fsyncs: durable before told
        pointers: dict[tuple[str, str], int] = {}
        words = {o.partition_key: config_words(registry, o.partition_key) for o in outcomes}
        for name in NODES:  # upstream first
            members = [outcome for outcome in outcomes if name in outcome.results]
            events: list[Any] = []
            for outcome in members:
                key, cached = outcome.partition_key, outcome.results[name]
                entry, checked = entry_outcomes(store, cached.entry, name)
                cached = replace(cached, entry=entry)
                events.append(_member_materialization(name, outcome, cached, pointers, words[key]))
                events += _check_evaluations(name, key, checked)
            if not events:
                continue
            _log_batch(context, events)
            latest = storage.get_latest_storage_id_by_partition(
                AssetKey(name),
                DagsterEventType.ASSET_MATERIALIZATION,
                {outcome.partition_key for outcome in members},
            )
            pointers.update({(name, key): storage_id for key, storage_id in latest.items()})

    return report


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

    report = _reporter(context, registry, step_scope.store)
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
    record, target = _study_target(context, "study_members")
    ran = sum(len(shard) for shard in shards)

    def compute() -> Computed:
        return Computed(
            payload=Record({"members": target.material["upstream"]}),
            metrics={"members": len(record.member_keys), "run_now": ran},
            tables={"members": _member_table(record)},
        )

    return run_cached(context, target, compute)


def _member_table(record: StudyRecord) -> str:
    from tabs_assets.orchestration.markdown import markdown_table

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


def _label_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)


def member_rows(
    context: AssetExecutionContext, record: StudyRecord
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Rows (labels + metrics) of every member, the label columns and the metric columns."""
    from tabs_assets.science.records import Record
    from tabs_assets.science.study_tables import SEED_LABEL, standard_labels

    store: StoreResource = context.resources.store
    registry = store.registry()
    rows, labels, metrics, missing = [], [], [], []
    for member in record.members:
        config = registry.config(member["partition_key"])
        entry = store.store().lookup(*entry_address("explanation_metrics", config))
        if entry is None:
            missing.append(member["partition_key"])
            continue
        # Sweep values add columns; a sweep key named like a standard label (e.g. `dataset`)
        # keeps the readable standard value.
        sweep = {k: _label_value(v) for k, v in member["labels"].items() if k != "seed"}
        row_labels = {**sweep, **standard_labels(config)}
        values = Record.load(entry.path).values
        rows.append({**row_labels, "partition_key": member["partition_key"], **values})
        labels = list(dict.fromkeys([*labels, *row_labels]))
        metrics = list(dict.fromkeys([*metrics, *values]))
    if missing:
        raise Failure(
            f"{len(missing)} of {len(record.members)} members of study {record.key} have no "
            f"explanation metrics in the store (e.g. {missing[0]}); materialize study_members "
            f"of {record.key} first (`tabs-assets study run {record.key}`)."
        )
    labels.remove(SEED_LABEL)
    return rows, labels, metrics


@asset(
    name="study_table",
    description="One row per member config (labels + explanation metrics), and mean ± SEM "
    "over seeds. Reads only the study's own members.",
    partitions_def=study_partitions,
    code_version=study_code_version("study_table"),
    io_manager_key="store_io_manager",
    required_resource_keys=RESOURCES,
    group_name="studies",
    kinds={"pandas"},
)
def study_table(context: AssetExecutionContext, study_members: StoredInput) -> Output:
    record, target = _study_target(context, "study_table")

    def compute() -> Computed:
        from tabs_assets.science.study_tables import build_study_table

        rows, labels, metrics = member_rows(context, record)
        table = build_study_table(rows, labels, metrics)
        return Computed(
            payload=table,
            metrics={"members": len(rows), "groups": len(table.aggregated)},
            tables=table.previews(record.study.report.metrics),
        )

    return run_cached(context, target, compute)


def latent_map_figures(context: AssetExecutionContext, record: StudyRecord) -> dict[str, Any]:
    """Per 2-D data set: the latent class maps of the study's flows (first seed), side by side."""
    from tabs_assets.orchestration.assets.dataset import load_dataset
    from tabs_assets.orchestration.assets.models import load_model
    from tabs_assets.science.plotting.maps import is_planar, latent_maps_figure
    from tabs_assets.science.study_tables import standard_labels

    store: StoreResource = context.resources.store
    registry = store.registry()
    chosen: dict[str, dict[str, Any]] = {}  # dataset label -> {flow label: config}
    for key in record.member_keys:
        config = registry.config(key)
        labels = standard_labels(config)
        flows = chosen.setdefault(labels["dataset"], {})
        if config.generative_model.is_flow and labels["generative"] not in flows:
            flows[labels["generative"]] = config  # the first seed met
    figures = {}
    for dataset_label, flows in chosen.items():
        first = next(iter(flows.values()))
        data = load_dataset(store.store().verify(*entry_address("dataset", first)).path)
        if not is_planar(data) or len(flows) < 2:
            continue
        classifier = load_model(store.store().verify(*entry_address("classifier", first)).path)
        built = {
            label: load_model(
                store.store().verify(*entry_address("generative_model", c)).path
            ).build()
            for label, c in flows.items()
        }
        name = f"latent_maps_{dataset_label.replace(':', '_')}"
        figures[name] = latent_maps_figure(data, classifier.build(), built)
    return figures


@asset(
    name="study_report",
    description="Tables (CSV, Markdown, LaTeX) and figures of a study.",
    partitions_def=study_partitions,
    code_version=study_code_version("study_report"),
    io_manager_key="store_io_manager",
    required_resource_keys=RESOURCES,
    group_name="studies",
    kinds={"pandas"},
)
def study_report(context: AssetExecutionContext, study_table: StoredInput) -> Output:
    record, target = _study_target(context, "study_report")
    inputs = Inputs({"study_table": study_table}, {"study_table": load_study_table})

    def compute() -> Computed:
        from tabs_assets.science.records import Record
        from tabs_assets.science.study_report import build_study_report

        extra = latent_map_figures(context, record) if record.study.report.latent_maps else {}
        report = build_study_report(inputs["study_table"], record.study, extra)
        return Computed(
            payload=Record({"files": sorted(report.files)}),
            metrics={"members": len(record.member_keys)},
            tables=report.tables,
            files=report.files,
            previews=[f"{name}.png" for name in report.figures],
        )

    return run_cached(context, target, compute)


def members_changed_since_table(instance: Any, record: StudyRecord) -> list[str]:
    """Members whose ``member_asset`` was materialized after the study's latest table.

    Dagster cannot map one study partition to its own member partitions (a partition mapping
    between two dynamic partition sets is one-to-one or all-to-all), so the study's staleness
    is read from the event log: what changed among exactly this study's members.
    """
    from dagster import AssetKey, AssetRecordsFilter

    def latest(asset_name: str, partitions: list[str], after: float | None = None) -> list[Any]:
        records_filter = AssetRecordsFilter(
            asset_key=AssetKey(asset_name), asset_partitions=partitions, after_timestamp=after
        )
        return instance.fetch_materializations(
            records_filter, limit=max(1, len(partitions))
        ).records

    tables = latest("study_table", [record.key])
    if not tables:
        return []
    changed = latest(record.study.report.member_asset, record.member_keys, tables[0].timestamp)
    return sorted({r.partition_key for r in changed})
