"""tabs_assets.science.metrics (SCIENCE.md §6): on crafted paths, checked by hand."""

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tabs_assets.config.experiment import MetricsConfig
from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.science.metrics import (
    aggregate_over_seeds,
    lof_scores,
    path_auc,
    path_lof_scores,
    path_mask,
    path_metrics,
    per_step_curves,
)

# S = 4 steps, B = 4 paths, C = 3 classes.
PREDICTIONS = torch.tensor(
    [
        [0, 0, 0, 1],
        [2, 0, 1, 1],
        [1, 0, 2, 1],
        [1, 0, 1, 1],
    ]
)
TARGETS = torch.tensor([1, 2, 2, 1])
# path 0: 0 2 1 1 -> target 1 first at step 2 (one crossing 0 -> 2 before it)
# path 1: never reaches target 2
# path 2: 0 1 2 1 -> target 2 first at step 2 (one crossing 0 -> 1 before it)
# path 3: starts at its target
INPUTS = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
DIRECTIONS = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
DELTAS = torch.tensor(
    [
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.5, 0.0],
        [2.0, 0.0, 0.5, 0.0],
        [3.0, 0.0, 0.5, 1.0],
    ]
)
CONFIG = MetricsConfig(lof_neighbors=3, ynn_neighbors=2)
TRAIN = torch.tensor(
    [[2.0, 3.0], [2.0, 3.1], [2.5, 1.5], [2.6, 1.5], [3.0, 1.0], [3.0, 1.1], [10.0, 10.0]]
)
TRAIN_LABELS = torch.tensor([1, 0, 2, 2, 1, 1, 0])
X_MAX = torch.tensor([3.0, 3.0])


class SquaredNormDensity(nn.Module):
    """log p(x) = -||x||^2, so the NLL of a point is its squared norm."""

    def log_prob(self, x: Tensor) -> Tensor:
        return -x.square().sum(-1)


class LookupClassifier(nn.Module):
    """Predicts the label of the nearest TRAIN row."""

    def forward(self, x: Tensor) -> Tensor:
        nearest = torch.cdist(x, TRAIN).argmin(-1)
        return nn.functional.one_hot(TRAIN_LABELS[nearest], 3).float()


def crafted_paths(predictions: Tensor = PREDICTIONS, seconds: float = 1.6e-6):
    points = INPUTS[None] + DELTAS[..., None] * DIRECTIONS[None]
    logits = nn.functional.one_hot(predictions, 3).float()
    return CounterfactualPaths(
        inputs=INPUTS,
        sources=predictions[0],
        targets=TARGETS,
        points=points,
        latents=None,
        logits=logits,
        predictions=predictions,
        seconds=seconds,
        method="latent_shift",
    )


def test_path_mask() -> None:
    expected = torch.tensor(
        [
            [True, False, True, False],
            [True, False, True, False],
            [False, False, False, False],
            [False, False, False, False],
        ]
    )
    assert torch.equal(path_mask(PREDICTIONS, TARGETS), expected)


def test_path_auc_is_the_trapezoid_over_unit_interval() -> None:
    values = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]])
    # h = 1/3: (0/2 + 2 + 4 + 6/2) / 3 = 3; a constant 1 integrates to 1.
    assert torch.allclose(path_auc(values), torch.tensor([3.0, 1.0], dtype=torch.float64))


def test_path_metrics_on_crafted_paths() -> None:
    paths = crafted_paths()
    metrics = path_metrics(paths, SquaredNormDensity(), TRAIN, TRAIN_LABELS, X_MAX, CONFIG, 0)
    assert metrics["n_paths"] == 4 and metrics["n_valid"] == 3
    assert metrics["validity_rate"] == pytest.approx(0.75)
    assert metrics["validity_rate_last"] == pytest.approx(0.5)
    assert metrics["time_per_step_ns"] == pytest.approx(1.6e-6 / 16 * 1e9)
    # Masked points: path 0 steps 0-1 ((0,1), (1,2)), path 2 steps 0-1 ((2,1), (2.5,1.5)).
    assert metrics["mean_nll"] == pytest.approx((1 + 5 + 5 + 8.5) / 4)
    assert metrics["mean_boundary_crossings"] == pytest.approx((1 + 1 + 0) / 3)
    # Path 3 has no masked step: it has no distance and is left out of the mean.
    assert metrics["mean_distance_to_max"] == pytest.approx((math.sqrt(5) + math.sqrt(2.5)) / 2)
    # L1 along the paths: (0,2,4,6), (0,0,0,0), (0,1,1,1), (0,0,0,2); h = 1/3.
    aucs = [3.0, 0.0, 2.5 / 3, 1 / 3]
    assert metrics["l1_auc"] == pytest.approx(sum(aucs) / 4)
    assert metrics["sparsity_l0"] == pytest.approx((2 + 0 + 2 + 1) / 4)
    # First valid points (2,3), (2.5,1.5), (3,1): 1 of 2, 2 of 2, 2 of 2 neighbours are the target.
    assert metrics["ynn"] == pytest.approx((0.5 + 1 + 1) / 3)
    lof = lof_scores(paths.points, TRAIN, CONFIG, 0)
    assert metrics["lof_auc"] == pytest.approx(float(path_auc(lof).mean()))
    # The classifier itself instead of its training labels gives the same yNN.
    again = path_metrics(
        paths, SquaredNormDensity(), TRAIN, LookupClassifier(), X_MAX, CONFIG, 0, lof=lof
    )
    assert again == pytest.approx(metrics)


def test_counterfactual_metrics_on_crafted_paths() -> None:
    """The first point predicted as the target: path 0 step 2 at (2, 3) from (0, 1); path 2 step
    2 at (2.5, 1.5) from (2, 1); path 3 step 0 (starts at its target); path 1 never gets there."""
    paths = crafted_paths()
    metrics = path_metrics(paths, SquaredNormDensity(), TRAIN, TRAIN_LABELS, X_MAX, CONFIG, 0)
    assert metrics["cf_step"] == pytest.approx((2 + 2 + 0) / 3)
    assert metrics["cf_l1"] == pytest.approx((4 + 1 + 0) / 3)
    assert metrics["cf_l2"] == pytest.approx((math.sqrt(8) + math.sqrt(0.5) + 0) / 3)
    assert metrics["cf_l0"] == pytest.approx((2 + 2 + 0) / 3)
    # NLL = squared norm: (2,3) -> 13, (2.5,1.5) -> 8.5, (3,1) -> 10.
    assert metrics["cf_nll"] == pytest.approx((13 + 8.5 + 10) / 3)
    lof = lof_scores(paths.points, TRAIN, CONFIG, 0)
    assert metrics["cf_lof"] == pytest.approx(float(lof[2, 0] + lof[2, 2] + lof[0, 3]) / 3)
    assert metrics["cf_ynn"] == pytest.approx((0.5 + 1 + 1) / 3) == metrics["ynn"]
    assert metrics["lof_fit_rows"] == 7  # all 7 training rows (below lof_max_train_rows)
    capped = MetricsConfig(lof_neighbors=3, ynn_neighbors=2, lof_max_train_rows=5)
    again = path_metrics(paths, SquaredNormDensity(), TRAIN, TRAIN_LABELS, X_MAX, capped, 0)
    assert again["lof_fit_rows"] == 5


def test_zero_valid_paths_give_nan_and_a_count_of_zero() -> None:
    paths = crafted_paths(torch.zeros(4, 4, dtype=torch.long))
    paths.targets = torch.ones(4, dtype=torch.long)
    metrics = path_metrics(paths, SquaredNormDensity(), TRAIN, TRAIN_LABELS, X_MAX, CONFIG, 0)
    assert metrics["n_valid"] == 0
    assert metrics["validity_rate"] == 0.0 and metrics["validity_rate_last"] == 0.0
    undefined = ("mean_nll", "mean_boundary_crossings", "mean_distance_to_max", "ynn")
    counterfactual = ("cf_step", "cf_l1", "cf_l2", "cf_l0", "cf_nll", "cf_lof", "cf_ynn")
    for name in undefined + counterfactual:
        assert math.isnan(metrics[name]), name
    assert not math.isnan(metrics["l1_auc"])


def test_per_step_curves() -> None:
    paths = crafted_paths()
    curves = per_step_curves(paths, TRAIN, CONFIG, 0)
    assert np.allclose(curves["l1"], [0.0, 0.75, 1.25, 2.25])
    expected_lof = path_lof_scores(paths, TRAIN, CONFIG, 0).double().mean(1).numpy()
    assert np.allclose(curves["lof"], expected_lof)


def test_lof_fit_subsample_is_drawn_with_the_seed() -> None:
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(200, 2, generator=generator)
    points = torch.randn(3, 5, 2, generator=generator)
    config = MetricsConfig(lof_neighbors=5, lof_max_train_rows=50)
    first = lof_scores(points, train, config, seed=1)
    assert first.shape == (3, 5)
    assert torch.equal(first, lof_scores(points, train, config, seed=1))
    assert not torch.equal(first, lof_scores(points, train, config, seed=2))


def test_aggregate_over_seeds() -> None:
    mean, sem = aggregate_over_seeds([1.0, 2.0, 3.0, 4.0])
    # std(ddof=1) = sqrt(5/3); SEM = sqrt(5/3) / 2.
    assert mean == pytest.approx(2.5) and sem == pytest.approx(math.sqrt(5 / 3) / 2)
    mean, sem = aggregate_over_seeds([0.7])
    assert mean == pytest.approx(0.7) and math.isnan(sem)
    assert all(math.isnan(v) for v in aggregate_over_seeds([]))
