"""Study tables: one row per member config, aggregated over seeds (mean ± SEM, SCIENCE.md §6-7)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.science.metrics import aggregate_over_seeds

MEMBERS_CSV = "members.csv"
AGGREGATED_CSV = "aggregated.csv"
SEED_LABEL = "seed"
# Shares shown as percentages in reports.
PERCENT_METRICS = {"validity_rate", "validity_rate_last", "ynn", "cf_ynn"}
PREVIEW_ROWS = 50
"""Rows of each table shown in the Dagster UI; the CSV files hold them all."""


def standard_labels(config: ExperimentConfig) -> dict[str, Any]:
    """Readable labels of a member config: what report rows and columns group by."""
    return {
        "dataset": config.dataset.label,
        "generative": config.generative_model.label,
        "explainer": config.explainer.label,
        "loss": config.loss.label,
        "loss_weight": config.loss.loss_weight,
        SEED_LABEL: config.generative_model.training.seed,
    }


@dataclass(frozen=True)
class StudyTable:
    """``members``: one row per member (labels + metrics); ``aggregated``: mean/SEM over seeds."""

    members: pd.DataFrame
    aggregated: pd.DataFrame

    def save(self, directory: Path) -> None:
        self.members.to_csv(directory / MEMBERS_CSV, index=False)
        self.aggregated.to_csv(directory / AGGREGATED_CSV, index=False)

    @classmethod
    def load(cls, directory: Path) -> "StudyTable":
        return cls(pd.read_csv(directory / MEMBERS_CSV), pd.read_csv(directory / AGGREGATED_CSV))

    def previews(self, metrics: Sequence[str], rows: int = PREVIEW_ROWS) -> dict[str, str]:
        """Markdown of the first ``rows`` members (labels, seed, ``metrics``, partition) and
        groups (labels, n, mean ± SEM of ``metrics``), each saying how many rows there are."""
        labels = [
            c for c in self.aggregated.columns if c != "n" and not c.endswith(("_mean", "_sem"))
        ]
        wanted = [*labels, SEED_LABEL, *metrics, "partition_key"]
        members = self.members[[c for c in wanted if c in self.members.columns]]
        groups = self.aggregated[[*labels, "n"]].assign(
            **{
                f"{metric} (%)" if metric in PERCENT_METRICS else metric: [
                    format_mean_sem(m, s, metric in PERCENT_METRICS)
                    for m, s in zip(
                        self.aggregated[f"{metric}_mean"],
                        self.aggregated[f"{metric}_sem"],
                        strict=True,
                    )
                ]
                for metric in metrics
                if f"{metric}_mean" in self.aggregated.columns
            }
        )
        return {
            "members": _markdown_head(members, MEMBERS_CSV, rows),
            "mean ± SEM over seeds": _markdown_head(groups, AGGREGATED_CSV, rows),
        }


def _markdown_head(frame: pd.DataFrame, file_name: str, rows: int) -> str:
    shown = min(rows, len(frame))
    table = frame.head(rows).to_markdown(index=False, floatfmt=".4g")
    return f"{table}\n\n{shown} of {len(frame)} rows; all of them in `{file_name}`."


def aggregate(members: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, SEM and count of each metric over the members of each group (i.e. over seeds)."""
    rows = []
    for keys, group in members.groupby(list(by), dropna=False, sort=True):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,), strict=True))
        row["n"] = len(group)
        for metric in metrics:
            mean, sem = aggregate_over_seeds(group[metric].dropna().tolist())
            row[f"{metric}_mean"], row[f"{metric}_sem"] = mean, sem
        rows.append(row)
    return pd.DataFrame(rows)


def build_study_table(
    rows: Sequence[dict[str, Any]], group_by: Sequence[str], metrics: Sequence[str]
) -> StudyTable:
    members = pd.DataFrame(list(rows))
    return StudyTable(members=members, aggregated=aggregate(members, group_by, metrics))


def format_mean_sem(mean: float, sem: float, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    if math.isnan(mean):
        return "n/a"
    if math.isnan(sem):
        return f"{mean * scale:.3g}"
    if sem <= 1e-9 * max(1.0, abs(mean)):  # equal values up to float rounding
        sem = 0.0
    return f"{mean * scale:.3g} ± {sem * scale:.2g}"


def pivot_metric(
    aggregated: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], metric: str
) -> pd.DataFrame:
    """A rows × columns table of 'mean ± SEM' strings for one metric (percent for shares)."""
    percent = metric in PERCENT_METRICS
    cells = aggregated.assign(
        cell=[
            format_mean_sem(m, s, percent)
            for m, s in zip(aggregated[f"{metric}_mean"], aggregated[f"{metric}_sem"], strict=True)
        ]
    )
    table = cells.pivot_table(
        index=list(rows), columns=list(columns), values="cell", aggfunc="first"
    )
    table.columns = [
        " / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns
    ]
    return table


def best_items(
    aggregated: pd.DataFrame, group: str, item: Sequence[str], metric: str, top: int
) -> pd.DataFrame:
    """The ``top`` items (e.g. loss × explainer) with the highest mean ``metric`` per group."""
    ranked = aggregated.sort_values([group, f"{metric}_mean"], ascending=[True, False])
    best = ranked.groupby(group, sort=True).head(top)
    percent = metric in PERCENT_METRICS
    best = best.assign(
        **{
            metric: [
                format_mean_sem(m, s, percent)
                for m, s in zip(best[f"{metric}_mean"], best[f"{metric}_sem"], strict=True)
            ]
        }
    )
    return best[[group, *item, metric]].reset_index(drop=True)
