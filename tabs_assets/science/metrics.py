"""Path metrics (SCIENCE.md §6): exact over the whole split, never averages of batch means.

A metric defined over valid paths (paths that reach the target) is NaN when no path is valid,
reported next to ``n_valid`` = 0, never a silent 0.

The counterfactual of a path is its first point predicted as the target (CARLA's notion of
"the" counterfactual); the ``cf_*`` metrics measure it, averaged over valid paths.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from torch import Tensor, nn

from tabs_assets.config.experiment import MetricsConfig
from tabs_assets.science.evaluation import evaluating, module_device
from tabs_assets.science.explainers.paths import CounterfactualPaths

SPARSITY_TOLERANCE = 1e-4
"""A feature counts as changed (L0) when it moved by more than this, in normalised units."""
DENSITY_CHUNK_ROWS = 65_536
"""Rows per reference-density call (memory only)."""


# --------------------------------------------------------------------------------------------
# Masks and per-step quantities


def path_mask(predictions: Tensor, targets: Tensor) -> Tensor:
    """bool [S, B]: steps strictly before the first step predicted as the target.

    All False on paths that never reach the target (and on paths that start there).
    """
    reached_at = predictions == targets[None, :]
    valid = reached_at.any(0)
    first = reached_at.int().argmax(0)  # first True; 0 when none (masked out by `valid`)
    steps = torch.arange(predictions.shape[0], device=predictions.device)[:, None]
    return (steps < first[None, :]) & valid[None, :]


def valid_paths(predictions: Tensor, targets: Tensor) -> Tensor:
    """bool [B]: the path is predicted as the target at some step."""
    return (predictions == targets[None, :]).any(0)


def first_valid_step(predictions: Tensor, targets: Tensor) -> Tensor:
    """long [B]: the first step predicted as the target (0 on paths that never reach it)."""
    return (predictions == targets[None, :]).int().argmax(0)


def l1_to_input(paths: CounterfactualPaths) -> Tensor:
    """||point_i - x||_1 along every path: [S, B]."""
    return (paths.points - paths.inputs[None]).abs().sum(-1)


def path_auc(values: Tensor) -> Tensor:
    """Trapezoid AUC of per-step values [S, B] over x = linspace(0, 1, S): [B]."""
    n_points = values.shape[0]
    if n_points == 1:
        return torch.zeros(values.shape[1], dtype=values.dtype)
    x = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    return torch.trapezoid(values.double(), x, dim=0)


def boundary_crossings(predictions: Tensor, mask: Tensor) -> Tensor:
    """Class changes at masked steps (into step i from i - 1, i >= 1) per path: [B]."""
    changed = predictions[1:] != predictions[:-1]
    return (changed & mask[1:]).sum(0)


def lof_fit_rows(n_train: int, config: MetricsConfig) -> int:
    """Rows LOF is fitted on: LOF scores grow with this number, so it is fixed and reported."""
    return min(n_train, config.lof_max_train_rows)


def lof_scores(points: Tensor, train_features: Tensor, config: MetricsConfig, seed: int) -> Tensor:
    """LOF score (-score_samples; about 1 for inliers, larger for outliers) per point: [...].

    LocalOutlierFactor(novelty=True) is fitted on at most ``lof_max_train_rows`` training rows
    drawn with ``seed``.
    """
    train = train_features.detach().cpu().numpy()
    rng = np.random.default_rng(seed)
    if len(train) > config.lof_max_train_rows:
        train = train[np.sort(rng.choice(len(train), config.lof_max_train_rows, replace=False))]
    neighbors = min(config.lof_neighbors, len(train) - 1)
    lof = LocalOutlierFactor(n_neighbors=neighbors, novelty=True).fit(train)
    flat = points.detach().cpu().reshape(-1, points.shape[-1]).numpy()
    scores = -lof.score_samples(flat) if len(flat) else np.zeros(0)
    return torch.from_numpy(scores).reshape(points.shape[:-1])


def path_lof_scores(
    paths: CounterfactualPaths, train_features: Tensor, config: MetricsConfig, seed: int
) -> Tensor:
    """LOF score of every path point: [S, B] (compute once, pass to the metric functions)."""
    return lof_scores(paths.points, train_features, config, seed)


def per_step_curves(
    paths: CounterfactualPaths,
    train_features: Tensor,
    config: MetricsConfig,
    seed: int,
    lof: Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Mean over all paths at each step: {"l1": [S], "lof": [S]} (for plots)."""
    if lof is None:
        lof = path_lof_scores(paths, train_features, config, seed)
    return {
        "l1": l1_to_input(paths).double().mean(1).numpy(),
        "lof": lof.double().mean(1).numpy(),
    }


# --------------------------------------------------------------------------------------------
# Scalars


def _mean(values: Tensor) -> float:
    """Exact mean of all values, NaN for none (never a silent 0)."""
    return float(values.double().mean()) if values.numel() else math.nan


@torch.no_grad()
def row_nll(rows: Tensor, reference_density: nn.Module) -> Tensor:
    """NLL under the reference density of every row [N, D] (eval mode, in chunks): [N] float64."""
    device = module_device(reference_density)
    with evaluating(reference_density):
        parts = [
            -reference_density.log_prob(rows[begin : begin + DENSITY_CHUNK_ROWS].to(device))
            .double()
            .cpu()
            for begin in range(0, len(rows), DENSITY_CHUNK_ROWS)
        ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def masked_nll(points: Tensor, mask: Tensor, reference_density: nn.Module) -> float:
    """Mean NLL under the reference density of all masked points of all paths, pooled."""
    return _mean(row_nll(points[mask], reference_density))


def min_distance_to(points: Tensor, mask: Tensor, anchor: Tensor) -> Tensor:
    """min over masked steps of ||point - anchor||_2 per path: [B] (NaN without masked steps)."""
    distances = (points - anchor.to(points)).norm(dim=-1).double()
    distances = distances.masked_fill(~mask, math.inf).amin(0)
    return distances.masked_fill(torch.isinf(distances), math.nan)


@torch.no_grad()
def _train_predictions(train_features: Tensor, classifier: nn.Module | Tensor) -> Tensor:
    if isinstance(classifier, Tensor):  # already its predictions
        return classifier.cpu().long()
    with evaluating(classifier):
        return classifier(train_features.to(module_device(classifier))).argmax(-1).cpu()


def ynn(
    counterfactuals: Tensor,
    targets: Tensor,
    train_features: Tensor,
    train_predictions: Tensor,
    neighbors: int,
) -> Tensor:
    """Share of the k nearest training rows that the classifier labels as the target: [N]."""
    if not len(counterfactuals):
        return torch.zeros(0, dtype=torch.float64)
    train = train_features.detach().cpu().numpy()
    index = NearestNeighbors(n_neighbors=min(neighbors, len(train))).fit(train)
    _, nearest = index.kneighbors(counterfactuals.detach().cpu().numpy())
    labels = train_predictions.cpu()[torch.from_numpy(nearest)]  # [N, k]
    return (labels == targets.cpu()[:, None]).double().mean(1)


def counterfactual_metrics(
    paths: CounterfactualPaths,
    reference_density: nn.Module,
    lof: Tensor,
    ynn_values: Tensor,
) -> dict[str, float]:
    """The counterfactual of each valid path (its first point predicted as the target), measured.

    Means over valid paths (NaN when none): ``cf_step`` (its step), ``cf_l1`` / ``cf_l2``
    (distance to the input), ``cf_l0`` (features moved by more than SPARSITY_TOLERANCE),
    ``cf_nll`` (NLL under the reference density), ``cf_lof`` (LOF score, from ``lof`` [S, B]) and
    ``cf_ynn`` (``ynn_values`` [N_valid], measured at the same points).
    """
    valid = valid_paths(paths.predictions, paths.targets)
    rows = valid.nonzero().squeeze(-1)
    steps = first_valid_step(paths.predictions, paths.targets)[valid]
    moved = paths.points[steps, rows] - paths.inputs[rows]  # [N_valid, D]
    return {
        "cf_step": _mean(steps.double()),
        "cf_l1": _mean(moved.double().abs().sum(-1)),
        "cf_l2": _mean(moved.double().norm(dim=-1)),
        "cf_l0": _mean((moved.abs() > SPARSITY_TOLERANCE).sum(-1).double()),
        "cf_nll": _mean(row_nll(paths.points[steps, rows], reference_density)),
        "cf_lof": _mean(lof[steps, rows]),
        "cf_ynn": _mean(ynn_values),
    }


def path_metrics(
    paths: CounterfactualPaths,
    reference_density: nn.Module,
    train_features: Tensor,
    classifier: nn.Module | Tensor,
    x_max: Tensor,
    config: MetricsConfig,
    seed: int,
    lof: Tensor | None = None,
) -> dict[str, float | int]:
    """Every §6 metric of a set of paths, exact over all of them.

    ``classifier``: the classifier (yNN uses its labels of ``train_features``, the normalised
    training rows), or those predicted labels themselves. ``lof``: precomputed ``path_lof_scores``.
    """
    n_steps_total = paths.points.shape[0]
    n_paths = paths.n_paths
    predictions, targets = paths.predictions, paths.targets
    valid = valid_paths(predictions, targets)
    mask = path_mask(predictions, targets)
    n_valid = int(valid.sum())
    if lof is None:
        lof = path_lof_scores(paths, train_features, config, seed)
    first = first_valid_step(predictions, targets)[valid]
    counterfactuals = paths.points[first, valid.nonzero().squeeze(-1)]  # [N_valid, D]
    train_predictions = _train_predictions(train_features, classifier)
    ynn_values = ynn(
        counterfactuals, targets[valid], train_features, train_predictions, config.ynn_neighbors
    )
    n_points = n_paths * n_steps_total
    return {
        "n_paths": n_paths,
        "n_valid": n_valid,
        "validity_rate": _mean(valid.double()),
        "validity_rate_last": _mean((predictions[-1] == targets).double()),
        "time_per_step_ns": paths.seconds / n_points * 1e9 if n_points else math.nan,
        "mean_nll": masked_nll(paths.points, mask, reference_density),
        "mean_boundary_crossings": _mean(boundary_crossings(predictions, mask)[valid]),
        "mean_distance_to_max": _nanmean(min_distance_to(paths.points, mask, x_max)[valid]),
        "l1_auc": _mean(path_auc(l1_to_input(paths))),
        "sparsity_l0": _mean(
            ((paths.points[-1] - paths.inputs).abs() > SPARSITY_TOLERANCE).sum(-1).double()
        ),
        "lof_auc": _mean(path_auc(lof)),
        "lof_fit_rows": lof_fit_rows(len(train_features), config),
        "ynn": _mean(ynn_values),
        **counterfactual_metrics(paths, reference_density, lof, ynn_values),
    }


def _nanmean(values: Tensor) -> float:
    """Mean of the defined values; NaN when none is (valid paths without masked steps)."""
    return _mean(values[~torch.isnan(values)])


def aggregate_over_seeds(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard error of the mean = std(ddof=1) / sqrt(n)); SEM is NaN for n < 2."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan
    return mean, float(array.std(ddof=1) / math.sqrt(array.size))
