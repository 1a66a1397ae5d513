"""What a study step tells Dagster of each member it ran: the member assets' materializations with
the provenance a normal run writes, their check results, in batches (one transaction each)."""

import os
from dataclasses import replace
from typing import Any

from dagster import (
    AssetKey,
    AssetMaterialization,
    OpExecutionContext,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
)

from tabs_assets.defs.cached import (
    Cached,
    config_words,
    metadata_for,
)
from tabs_assets.defs.checks import entry_outcomes, specs_of
from tabs_assets.defs.study_run import (
    MemberOutcome,
    ReportFn,
)
from tabs_assets.graph.nodes import (
    NODES,
)
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store

# Member events are written in batches, one SQLite transaction each with the storage of
# dagster.yaml (defs/event_log.py); Dagster batches only when this is set.
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


def member_reporter(context: OpExecutionContext, registry: Registry, store: Store) -> ReportFn:
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
