"""study_table and study_report: the members' metrics side by side, and the report's figures."""

import json
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    Output,
    asset,
)

from tabs_assets.defs.assets.study_members import RESOURCES, study_target
from tabs_assets.defs.cached import run_cached
from tabs_assets.defs.compute import Computed, Inputs
from tabs_assets.defs.io_manager import StoredInput
from tabs_assets.defs.partitions import study_partitions
from tabs_assets.defs.resources import StoreResource
from tabs_assets.graph.nodes import (
    entry_address,
    study_code_version,
)
from tabs_assets.registry.records import StudyRecord


def load_study_table(path: Path) -> Any:
    from tabs_assets.science.study_tables import StudyTable

    return StudyTable.load(path)


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
    record, target = study_target(context, "study_table")

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
    from tabs_assets.defs.assets.dataset import load_dataset
    from tabs_assets.defs.assets.models import load_model
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
    record, target = study_target(context, "study_report")
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
    from dagster import AssetRecordsFilter

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
