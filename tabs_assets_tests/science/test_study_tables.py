"""tabs_assets.science.study_tables: mean ± SEM over seeds, pivots, previews."""

import math

import pandas as pd
import pytest

from tabs_assets.science.study_tables import aggregate, best_items, pivot_metric

CRAFTED = pd.DataFrame(
    {
        "dataset": ["cake"] * 5 + ["wine"] * 2,
        "explainer": ["latent_shift"] * 3 + ["revise"] * 2 + ["latent_shift"] * 2,
        "seed": [1, 2, 3, 1, 2, 1, 2],
        "validity_rate": [0.5, 0.7, 0.9, 1.0, 1.0, 0.2, float("nan")],
    }
)


def test_aggregate_computes_mean_and_sem_over_seeds() -> None:
    table = aggregate(CRAFTED, ["dataset", "explainer"], ["validity_rate"]).set_index(
        ["dataset", "explainer"]
    )
    cake = table.loc[("cake", "latent_shift")]
    assert cake["n"] == 3
    assert cake["validity_rate_mean"] == pytest.approx(0.7)
    assert cake["validity_rate_sem"] == pytest.approx(0.2 / math.sqrt(3))  # std(ddof=1)=0.2
    revise = table.loc[("cake", "revise")]
    assert (revise["validity_rate_mean"], revise["validity_rate_sem"]) == (1.0, 0.0)
    wine = table.loc[("wine", "latent_shift")]  # NaN (no valid path) is not averaged as 0
    assert wine["validity_rate_mean"] == pytest.approx(0.2)
    assert math.isnan(wine["validity_rate_sem"])


def test_pivot_formats_percentages_and_ranking_orders_best_first() -> None:
    aggregated = aggregate(CRAFTED, ["dataset", "explainer"], ["validity_rate"])
    pivot = pivot_metric(aggregated, ["dataset"], ["explainer"], "validity_rate")
    assert pivot.loc["cake", "latent_shift"] == "70 ± 12"
    assert pivot.loc["cake", "revise"] == "100 ± 0"
    assert pivot.loc["wine", "latent_shift"] == "20"
    best = best_items(aggregated, "dataset", ["explainer"], "validity_rate", top=1)
    assert best.to_dict("records") == [
        {"dataset": "cake", "explainer": "revise", "validity_rate": "100 ± 0"},
        {"dataset": "wine", "explainer": "latent_shift", "validity_rate": "20"},
    ]


def test_study_table_previews_show_bounded_rows_with_their_count() -> None:
    from tabs_assets.science.study_tables import build_study_table

    rows = [
        {"dataset": "cake", "explainer": method, "seed": seed, "partition_key": f"{method}-{seed}"}
        | {"validity_rate": 0.5 + seed / 10, "l1_auc": 1.234567}
        for method in ("latent_shift", "revise")
        for seed in (1, 2)
    ]
    table = build_study_table(rows, ["dataset", "explainer"], ["validity_rate", "l1_auc"])
    previews = table.previews(["validity_rate"], rows=3)
    members = previews["members"].splitlines()
    assert [c.strip() for c in members[0].split("|")[1:-1]] == [
        "dataset",
        "explainer",
        "seed",
        "validity_rate",
        "partition_key",
    ]
    assert len([line for line in members if line.startswith("| cake")]) == 3
    assert members[-1] == "3 of 4 rows; all of them in `members.csv`."
    groups = previews["mean ± SEM over seeds"].splitlines()
    assert [c.strip() for c in groups[0].split("|")[1:-1]] == [
        "dataset",
        "explainer",
        "n",
        "validity_rate (%)",
    ]
    assert [c.strip() for c in groups[2].split("|")[1:-1]] == [
        "cake",
        "latent_shift",
        "2",
        "65 ± 5",
    ]
    assert groups[-1] == "2 of 2 rows; all of them in `aggregated.csv`."
