"""Study report figures from a table with one row per member (SCIENCE.md §7)."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from tabs_assets.science.plotting.style import new_figure, project_style
from tabs_assets.science.study_tables import aggregate

LINE_STYLES = ("-", "--", ":", "-.")
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def require_columns(df: pd.DataFrame, columns: Sequence[str | None]) -> None:
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"the study table has no column(s) {missing}; it has {list(df.columns)}")


def mean_and_sem(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Columns ``mean`` and ``sem`` of ``value`` per group of ``keys`` (rows without a key are
    left out): the numbers of the study tables (``study_tables.aggregate``)."""
    summary = aggregate(df.dropna(subset=keys), keys, [value])
    return summary.rename(columns={f"{value}_mean": "mean", f"{value}_sem": "sem"})


def format_rate_axis(axes: Axes, value: str) -> None:
    """Rates in [0, 1] are shown as percentages."""
    if value.endswith("rate"):
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))


def validity_vs_weight_figure(
    df: pd.DataFrame,
    x: str = "loss.weight",
    hue: str = "dataset",
    value: str = "validity_rate",
    style: str | None = None,
) -> Figure:
    """``value`` against ``x`` (mean ± SEM over the other rows, e.g. seeds), one line per ``hue``
    (and line style per ``style``); log x axis when every x is positive."""
    require_columns(df, [x, hue, value, style])
    keys = [hue] + ([style] if style else [])
    summary = mean_and_sem(df.dropna(subset=[value]), [*keys, x], value)
    hues = list(dict.fromkeys(summary[hue]))
    styles = list(dict.fromkeys(summary[style])) if style else [None]
    with project_style():
        figure = new_figure(6.4, 3.8)
        axes = figure.add_subplot()
        for (hue_value, *rest), group in summary.groupby(keys, sort=False):
            style_value = rest[0] if rest else None
            label = str(hue_value) if not style else f"{hue_value} / {style_value}"
            axes.errorbar(
                group[x],
                group["mean"],
                yerr=group["sem"].fillna(0.0),
                label=label,
                color=PALETTE[hues.index(hue_value) % len(PALETTE)],
                ls=LINE_STYLES[styles.index(style_value) % len(LINE_STYLES)],
                marker="o",
                markersize=3,
                capsize=3,
            )
        if len(summary) and (summary[x] > 0).all():
            axes.set_xscale("log")
        format_rate_axis(axes, value)
        axes.set_xlabel(x)
        axes.set_ylabel(value)
        axes.set_title(f"{value} against {x} (mean ± SEM)")
        figure.legend(loc="outside right upper", fontsize=7)
    return figure


def method_boxplots_figure(
    df: pd.DataFrame, method: str = "explainer", metrics: Sequence[str] = ("l1_auc", "lof_auc")
) -> Figure:
    """One panel per metric: a box per ``method`` value, every member drawn as a dot."""
    require_columns(df, [method, *metrics])
    methods = list(dict.fromkeys(df[method]))
    positions = np.arange(1, len(methods) + 1)
    with project_style():
        figure = new_figure(min(0.8 + 3.4 * len(metrics), 10.0), 3.4)
        for index, metric in enumerate(metrics):
            axes = figure.add_subplot(1, len(metrics), index + 1)
            values = [df.loc[df[method] == m, metric].dropna().to_numpy() for m in methods]
            axes.boxplot(values, positions=positions, widths=0.5, showfliers=False)
            for position, points in zip(positions, values, strict=True):
                # Deterministic spread so dots of equal value stay distinguishable.
                offsets = np.linspace(-0.12, 0.12, len(points)) if len(points) > 1 else [0.0]
                colour = PALETTE[(position - 1) % len(PALETTE)]
                axes.scatter(position + np.asarray(offsets), points, s=10, color=colour, zorder=3)
            axes.set_xticks(positions, [str(m) for m in methods], rotation=20, ha="right")
            format_rate_axis(axes, metric)
            axes.set_title(metric)
        figure.suptitle(f"Per {method}: every member is a dot")
    return figure
