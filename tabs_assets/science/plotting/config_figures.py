"""Every figure that applies to one experiment config (SCIENCE.md §7.6, §8)."""

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from tabs_assets.config.experiment import PlotsConfig
from tabs_assets.config.explainers import ExplainerConfig
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers.explain import explain
from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.science.models.trained import TrainedModel
from tabs_assets.science.plotting.evaluation import latent_width
from tabs_assets.science.plotting.grids import (
    EXAMPLE_TARGET,
    example_path_inputs,
    has_example_paths,
    is_planar,
)
from tabs_assets.science.plotting.losses import gradient_stream_figure, loss_contours_figure
from tabs_assets.science.plotting.maps import (
    class_map_figure,
    latent_map_figure,
    probability_map_figure,
    round_trip_figure,
)
from tabs_assets.science.plotting.models import learning_curves_figure
from tabs_assets.science.plotting.paths import (
    path_metric_curves_figure,
    validity_per_target_figure,
)
from tabs_assets.science.records import Record

LATENT_STEP_SIZE = 0.01
"""eta of the single latent step drawn by the gradient stream (only its direction matters)."""


def common_pair(paths: CounterfactualPaths) -> tuple[int, int]:
    """The most frequent (source, target) pair of the paths (ties: the smallest); (0, 1) if none."""
    if not paths.n_paths:
        return 0, 1
    pairs, counts = np.unique(
        np.stack([paths.sources.numpy(), paths.targets.numpy()], axis=1), axis=0, return_counts=True
    )
    source, target = pairs[int(counts.argmax())]
    return int(source), int(target)


def example_paths(
    data: PreparedDataset,
    classifier: nn.Module,
    generative: nn.Module | None,
    explainer: ExplainerConfig,
    loss: ValidityLossConfig,
    n: int,
) -> CounterfactualPaths:
    """The §7.6 example paths: ``n`` cake-on-sea inputs on x1 = 43, x0 in [37, 43], to class 0."""
    inputs = torch.as_tensor(example_path_inputs(data, n), dtype=torch.float32)
    targets = torch.full((n,), EXAMPLE_TARGET, dtype=torch.long)
    return explain(inputs, targets, classifier, generative, explainer, loss)


def config_figures(
    data: PreparedDataset,
    classifier_model: TrainedModel,
    generative_model: TrainedModel | None,
    paths: CounterfactualPaths,
    metrics_record: Record | Mapping[str, np.ndarray],
    plots_config: PlotsConfig,
    loss_config: ValidityLossConfig,
    explainer_config: ExplainerConfig,
) -> dict[str, Figure]:
    """File stem -> figure, for every figure that applies to this config.

    Always: learning curves, path-metric curves (``metrics_record.arrays``, or the curves dict
    itself) and validity per target. With a 2-D latent space: the latent class map. For data
    with exactly two free dimensions: the class map with paths (on cake on sea the §7.6 example
    paths, explained here with ``explainer_config``; otherwise ``plots.n_example_paths`` of the
    test paths, spread over them), the probability map, the round-trip map, and loss contours
    and gradient streams for the most frequent (source, target) pair of the paths.
    """
    curves = metrics_record.arrays if isinstance(metrics_record, Record) else metrics_record
    figures = {
        "classifier_learning_curves": learning_curves_figure(
            classifier_model.history, "Classifier learning curves"
        )
    }
    if generative_model is not None:
        figures["generative_learning_curves"] = learning_curves_figure(
            generative_model.history, f"{generative_model.kind.upper()} learning curves"
        )
    figures["path_metric_curves"] = path_metric_curves_figure(curves)
    figures["validity_per_target"] = validity_per_target_figure(paths, data.class_names)

    classifier = classifier_model.build()
    generative = generative_model.build() if generative_model is not None else None
    resolution = plots_config.grid_resolution
    latent_2d = generative is not None and latent_width(generative, data) == 2
    if latent_2d:
        figures["latent_map"] = latent_map_figure(data, classifier, generative, resolution)
    if not is_planar(data):
        return figures

    n_paths = plots_config.n_example_paths
    if has_example_paths(data):
        drawn = example_paths(data, classifier, generative, explainer_config, loss_config, n_paths)
        label = f"example paths to {data.class_names[EXAMPLE_TARGET]}"
        figures["class_map"] = class_map_figure(data, classifier, drawn, n_paths, resolution, label)
    else:
        figures["class_map"] = class_map_figure(data, classifier, paths, n_paths, resolution)
    figures["probability_map"] = probability_map_figure(data, classifier, resolution)
    if generative is not None:
        figures["round_trip_map"] = round_trip_figure(data, generative, resolution)
    source, target = common_pair(paths)
    figures["loss_contours"] = loss_contours_figure(
        data, classifier, loss_config, source, target, "input", resolution=resolution
    )
    if latent_2d:
        figures["loss_contours_latent"] = loss_contours_figure(
            data, classifier, loss_config, source, target, "latent", generative, resolution
        )
    figures["gradient_stream"] = gradient_stream_figure(
        data, classifier, loss_config, source, target, generative, LATENT_STEP_SIZE, resolution
    )
    return figures
