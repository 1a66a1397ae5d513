"""Study assets (one partition per study): a table over the member configs, then a report.

A study reads only its own members' explanation metrics, found by their store keys.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    Failure,
    Output,
    asset,
)

from tabs_assets.orchestration.cached import CacheTarget, Computed, Inputs, run_cached
from tabs_assets.orchestration.graph import (
    entry_address,
    study_code_version,
    study_key_material,
    study_store_key,
)
from tabs_assets.orchestration.io_manager import StoredInput
from tabs_assets.orchestration.partitions import study_partitions
from tabs_assets.orchestration.registry import StudyRecord
from tabs_assets.orchestration.resources import StoreResource


def load_study_table(path: Path) -> Any:
    from tabs_assets.science.study_tables import StudyTable

    return StudyTable.load(path)


def _study_target(
    context: AssetExecutionContext, asset_name: str
) -> tuple[StudyRecord, CacheTarget]:
    store: StoreResource = context.resources.store
    registry = store.registry()
    record = registry.study(context.partition_key)
    members = record.member_configs(registry)
    key = study_store_key(asset_name, record.study, members)
    material = study_key_material(asset_name, record.study, members)
    return record, CacheTarget(asset_name, asset_name, key, material, material["code_version"])


def _label_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)


@dataclass
class MemberRows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # grouping columns (seed excluded)
    metrics: list[str] = field(default_factory=list)


def member_rows(context: AssetExecutionContext, record: StudyRecord) -> MemberRows:
    """Labels and metrics of every member; fails listing the members not yet materialized."""
    from tabs_assets.science.records import Record
    from tabs_assets.science.study_tables import SEED_LABEL, standard_labels

    store: StoreResource = context.resources.store
    registry = store.registry()
    found, missing = MemberRows(), []
    for member in record.members:
        config = registry.config(member["partition_key"])
        entry = store.store().lookup(*entry_address("explanation_metrics", config))
        if entry is None:
            missing.append(member["partition_key"])
            continue
        # Sweep values add columns; a sweep key named like a standard label (e.g. `dataset`)
        # keeps the readable standard value.
        sweep = {k: _label_value(v) for k, v in member["labels"].items() if k != "seed"}
        labels = {**sweep, **standard_labels(config)}
        values = Record.load(entry.path).values
        found.rows.append({**labels, "partition_key": member["partition_key"], **values})
        found.labels = list(dict.fromkeys([*found.labels, *labels]))
        found.metrics = list(dict.fromkeys([*found.metrics, *values]))
    if missing:
        raise Failure(
            f"{len(missing)} of {len(record.members)} members of study {record.key} have no "
            f"explanation metrics yet (e.g. {missing[0]}); run `tabs-assets study run "
            f"{record.key}` to materialize them first."
        )
    found.labels.remove(SEED_LABEL)
    return found


@asset(
    name="study_table",
    description="One row per member config (labels + explanation metrics), and mean ± SEM "
    "over seeds. Reads only the study's own members.",
    partitions_def=study_partitions,
    code_version=study_code_version("study_table"),
    deps=[AssetDep("explanation_metrics", partition_mapping=AllPartitionMapping())],
    io_manager_key="store_io_manager",
    required_resource_keys={"store", "tracking"},
    group_name="studies",
    kinds={"pandas"},
)
def study_table(context: AssetExecutionContext) -> Output:
    from tabs_assets.science.study_tables import build_study_table

    record, target = _study_target(context, "study_table")

    def compute() -> Computed:
        found = member_rows(context, record)
        table = build_study_table(found.rows, found.labels, found.metrics)
        return Computed(
            payload=table, metrics={"members": len(found.rows), "groups": len(table.aggregated)}
        )

    return run_cached(context, target, compute)


def _table_files(name: str, table: Any) -> dict[str, bytes]:
    """A pandas table as CSV, Markdown and LaTeX."""
    return {
        f"{name}.csv": table.to_csv().encode(),
        f"{name}.md": table.reset_index().to_markdown(index=False).encode(),
        f"{name}.tex": table.to_latex().encode(),
    }


def _varying_extra_labels(aggregated: Any, shown: list[str], labels: list[str]) -> list[str]:
    """Labels not in the layout that still vary within a cell: they must join the rows."""
    extra = []
    for label in labels:
        if label in shown:
            continue
        spread = aggregated.groupby(shown, dropna=False)[label].nunique(dropna=False)
        if (spread > 1).any():
            extra.append(label)
    return extra


def report_files(
    table: Any, report: Any, labels: list[str]
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every file of a study report, and its Markdown tables for the Dagster UI."""
    from tabs_assets.science.plotting.studies import (
        method_boxplots_figure,
        validity_vs_weight_figure,
    )
    from tabs_assets.science.plotting.style import figure_bytes
    from tabs_assets.science.study_tables import best_items, pivot_metric

    files: dict[str, bytes] = {}
    markdown: dict[str, str] = {}
    layout = [*report.rows, *report.columns]
    rows = [*report.rows, *_varying_extra_labels(table.aggregated, layout, labels)]
    for metric in report.metrics:
        pivot = pivot_metric(table.aggregated, rows, report.columns, metric)
        files.update(_table_files(metric, pivot))
        markdown[metric] = pivot.reset_index().to_markdown(index=False)
    if report.ranking is not None:
        ranking = report.ranking
        best = best_items(
            table.aggregated, ranking.group, ranking.items, ranking.metric, ranking.top
        )
        files.update(_table_files(f"best_{ranking.metric}", best.set_index(ranking.group)))
        markdown[f"best_{ranking.metric}"] = best.to_markdown(index=False)
    figures = {}
    for plot in report.line_plots:
        members = table.members
        for label, value in plot.where.items():
            members = members[members[label] == value]
        figure = validity_vs_weight_figure(members, x=plot.x, hue=plot.hue, value=plot.value)
        if plot.where:  # say which members the lines are drawn from
            where = ", ".join(f"{label} = {value}" for label, value in plot.where.items())
            figure.axes[0].set_title(f"{plot.value} against {plot.x} ({where})")
        figures[plot.name] = figure
    if report.boxplots:  # one figure per dataset: metric scales differ between data sets
        for dataset, members in table.members.groupby("dataset", sort=True):
            figure = method_boxplots_figure(
                members, method="explainer", metrics=tuple(report.boxplots)
            )
            figure.suptitle(f"{dataset}: one dot per member (seed)")
            figures[f"method_boxplots_{dataset.replace(':', '_')}"] = figure
    for name, figure in figures.items():
        for fmt in ("png", "svg"):
            files[f"{name}.{fmt}"] = figure_bytes(figure, fmt)
    summary = "\n\n".join(f"## {name}\n\n{text}" for name, text in markdown.items())
    images = "\n".join(f"![{name}]({name}.png)" for name in figures)
    files["report.md"] = f"# Study report\n\n{summary}\n\n{images}\n".encode()
    return files, markdown


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
        if config.generative_model.kind == "nice" and labels["generative"] not in flows:
            flows[labels["generative"]] = config  # the first seed met
    figures = {}
    for dataset_label, flows in chosen.items():
        first = next(iter(flows.values()))
        data = load_dataset(store.store().verify(*entry_address("dataset", first)).path)
        if not is_planar(data) or len(flows) < 2:
            continue
        classifier = load_model(store.store().verify(*entry_address("classifier", first)).path)
        models = {
            label: load_model(store.store().verify(*entry_address("generative_model", c)).path)
            for label, c in flows.items()
        }
        built = {label: model.build() for label, model in models.items()}
        name = f"latent_maps_{dataset_label.replace(':', '_')}"
        figures[name] = latent_maps_figure(data, classifier.build(), built)
    return figures


@asset(
    name="study_report",
    description="Tables (CSV, Markdown, LaTeX) and figures of a study.",
    partitions_def=study_partitions,
    code_version=study_code_version("study_report"),
    io_manager_key="store_io_manager",
    required_resource_keys={"store", "tracking"},
    group_name="studies",
    kinds={"pandas"},
)
def study_report(context: AssetExecutionContext, study_table: StoredInput) -> Output:
    from tabs_assets.science.records import Record

    record, target = _study_target(context, "study_report")
    inputs = Inputs({"study_table": study_table}, {"study_table": load_study_table})

    def compute() -> Computed:
        table = inputs["study_table"]
        labels = [c for c in table.aggregated.columns if not c.endswith(("_mean", "_sem"))]
        labels.remove("n")
        files, markdown = report_files(table, record.study.report, labels)
        if record.study.report.latent_maps:
            from tabs_assets.science.plotting.style import figure_bytes

            for name, figure in latent_map_figures(context, record).items():
                files.update({f"{name}.{fmt}": figure_bytes(figure, fmt) for fmt in ("png", "svg")})
                files["report.md"] += f"![{name}]({name}.png)\n".encode()
        previews = [name for name in files if name.endswith(".png")]
        return Computed(
            payload=Record({"files": sorted(files)}),
            metrics={"members": len(table.members)},
            tables=markdown,
            files=files,
            previews=previews,
        )

    return run_cached(context, target, compute)
