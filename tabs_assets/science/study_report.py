"""A study's report: pivot tables (CSV, Markdown, LaTeX), a ranking, figures and report.md.

Pure functions of a study table and the study's report settings; the orchestration loads the
inputs and stores what is returned.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tabs_assets.config.experiment import COUNTERFACTUAL_METRICS
from tabs_assets.config.study import StudyConfig
from tabs_assets.science.plotting.studies import method_boxplots_figure, validity_vs_weight_figure
from tabs_assets.science.plotting.style import figure_bytes
from tabs_assets.science.study_tables import (
    PERCENT_METRICS,
    StudyTable,
    best_items,
    format_mean_sem,
    pivot_metric,
)

FIGURE_FORMATS = ("png", "svg")
COUNTERFACTUALS = "counterfactuals"  # the first point of each path predicted as the target
SEM_NOTE = (
    "Cells read `mean ± SEM` over the seeds of a group (SEM = sample standard deviation / "
    "sqrt(n)); percentages for shares. A cell without ± has one seed or a SEM of 0."
)


@dataclass
class StudyReport:
    """Every file of a report, and its Markdown tables for the Dagster UI."""

    files: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


def table_files(name: str, table: pd.DataFrame) -> dict[str, bytes]:
    """A pandas table as CSV, Markdown and LaTeX."""
    return {
        f"{name}.csv": table.to_csv().encode(),
        f"{name}.md": table.reset_index().to_markdown(index=False).encode(),
        f"{name}.tex": table.to_latex().encode(),
    }


def varying_extra_labels(
    aggregated: pd.DataFrame, shown: list[str], labels: list[str]
) -> list[str]:
    """Labels not in the layout that still vary within a cell: they must join the rows."""
    extra = []
    for label in labels:
        if label in shown:
            continue
        spread = aggregated.groupby(shown, dropna=False)[label].nunique(dropna=False)
        if (spread > 1).any():
            extra.append(label)
    return extra


def table_labels(table: StudyTable) -> list[str]:
    """The grouping columns of the aggregated table (not metrics, not the count)."""
    return [c for c in table.aggregated.columns if not c.endswith(("_mean", "_sem")) and c != "n"]


def counterfactual_table(aggregated: pd.DataFrame, groups: list[str]) -> pd.DataFrame | None:
    """Per group: every first-valid-point metric (CARLA-style), mean ± SEM; None without any."""
    present = [m for m in COUNTERFACTUAL_METRICS if f"{m}_mean" in aggregated]
    if not present:
        return None
    cells = {
        metric: [
            format_mean_sem(mean, sem, metric in PERCENT_METRICS)
            for mean, sem in zip(
                aggregated[f"{metric}_mean"], aggregated[f"{metric}_sem"], strict=True
            )
        ]
        for metric in present
    }
    return pd.DataFrame({**aggregated[groups].to_dict("list"), **cells}).set_index(groups)


def _figures(table: StudyTable, report: Any) -> dict[str, Figure]:
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
    return figures


def build_study_report(
    table: StudyTable, study: StudyConfig, extra_figures: Mapping[str, Figure] | None = None
) -> StudyReport:
    """Tables per metric (rows x columns of the report settings), ranking, figures, report.md."""
    report = study.report
    result = StudyReport()
    layout = [*report.rows, *report.columns]
    rows = [*report.rows, *varying_extra_labels(table.aggregated, layout, table_labels(table))]
    for metric in report.metrics:
        pivot = pivot_metric(table.aggregated, rows, report.columns, metric)
        result.files.update(table_files(metric, pivot))
        result.tables[metric] = pivot.reset_index().to_markdown(index=False)
    counterfactuals = counterfactual_table(table.aggregated, [*rows, *report.columns])
    if counterfactuals is not None:
        result.files.update(table_files(COUNTERFACTUALS, counterfactuals))
        result.tables[COUNTERFACTUALS] = counterfactuals.reset_index().to_markdown(index=False)
    if report.ranking is not None:
        ranking = report.ranking
        best = best_items(
            table.aggregated, ranking.group, ranking.items, ranking.metric, ranking.top
        )
        result.files.update(table_files(f"best_{ranking.metric}", best.set_index(ranking.group)))
        result.tables[f"best_{ranking.metric}"] = best.to_markdown(index=False)
    figures = {**_figures(table, report), **(extra_figures or {})}
    for name, figure in figures.items():
        for fmt in FIGURE_FORMATS:
            result.files[f"{name}.{fmt}"] = figure_bytes(figure, fmt)
    result.figures = list(figures)
    result.files["report.md"] = _report_markdown(table, study, result).encode()
    return result


def _report_markdown(table: StudyTable, study: StudyConfig, result: StudyReport) -> str:
    seeds = int(table.aggregated["n"].max()) if len(table.aggregated) else 0
    header = [
        f"# Study report: {study.name}",
        "",
        *([study.description, ""] if study.description else []),
        f"{len(table.members)} member configs in {len(table.aggregated)} groups "
        f"(up to {seeds} seeds each). {SEM_NOTE}",
    ]
    sections = [f"## {name}\n\n{text}" for name, text in result.tables.items()]
    images = [f"![{name}]({name}.png)" for name in result.figures]
    return "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n\n" + "\n".join(images) + "\n"
