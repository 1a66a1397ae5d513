"""Every figure that applies to one experiment config (SCIENCE.md §7.6, §8)."""

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from tabs_assets.config.experiment import PlotsConfig
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers import CounterfactualPaths
from tabs_assets.science.models.trained import TrainedModel
from tabs_assets.science.plotting.losses import gradient_stream_figure, loss_contours_figure
from tabs_assets.science.plotting.maps import (
    class_map_figure,
    is_planar,
    latent_map_figure,
    latent_width,
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


def config_figures(
    data: PreparedDataset,
    classifier_model: TrainedModel,
    generative_model: TrainedModel | None,
    paths: CounterfactualPaths,
    metrics_record: Record | Mapping[str, np.ndarray],
    plots_config: PlotsConfig,
    loss_config: ValidityLossConfig,
) -> dict[str, Figure]:
    """File stem -> figure, for every figure that applies to this config.

    Always: learning curves, path-metric curves (``metrics_record.arrays``, or the curves dict
    itself) and validity per target. With a 2-D latent space: the latent class map. For data
    with exactly two free dimensions (cake on sea): the class map with example paths, the
    probability map, the round-trip map, and loss contours and gradient streams for the most
    frequent (source, target) pair of the paths.
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

    figures["class_map"] = class_map_figure(
        data, classifier, paths, plots_config.n_example_paths, resolution
    )
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
