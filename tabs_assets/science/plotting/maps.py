"""The 2-D figures (SCIENCE.md §7.6): class, probability, latent and round-trip maps.

The plane and its grids are in ``grids``, the model evaluation in ``evaluation``, the drawing
primitives in ``drawing``.
"""

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import nn

from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.science.plotting.drawing import (
    class_handles,
    draw_boundaries,
    draw_classes,
    draw_paths,
    label_input_axes,
    label_latent_axes,
    scatter_points,
    scatter_training,
)
from tabs_assets.science.plotting.evaluation import (
    class_logits,
    decoded,
    encoded,
    require_2d_latent,
    round_trip_errors,
)
from tabs_assets.science.plotting.grids import (
    covering_bounds,
    input_grid,
    is_planar,
    latent_grid,
    spread_indices,
    training_sample,
)
from tabs_assets.science.plotting.style import new_figure, project_style

__all__ = [
    "class_map_figure",
    "is_planar",  # re-exported: defs/assets/study_report.py imports it from here
    "latent_map_figure",
    "latent_maps_figure",
    "probability_map_figure",
    "round_trip_figure",
]


def class_map_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    paths: CounterfactualPaths | None = None,
    n_paths: int = 20,
    resolution: int = 200,
    paths_label: str = "paths",
) -> Figure:
    """Predicted class over the input grid, training points, and up to ``n_paths`` paths.

    The title counts the paths drawn: "... and 20 latent_shift {paths_label}".
    """
    shown = spread_indices(paths.n_paths, n_paths) if paths is not None else np.zeros(0, int)
    bounds = None
    if paths is not None and len(shown):
        bounds = covering_bounds(data, data.denormalise(paths.points[:, shown].numpy())[..., :2])
    grid = input_grid(data, resolution, bounds)
    classes = class_logits(classifier, grid.points).argmax(-1).numpy()
    with project_style():
        figure = new_figure(6.2, 4.6)
        axes = figure.add_subplot()
        draw_classes(axes, grid, classes, data.n_classes)
        scatter_training(axes, data)
        handles: list = class_handles(data.class_names)
        title = "Predicted class"
        if paths is not None and len(shown):
            handles += draw_paths(axes, data, paths, shown)
            title += f" and {len(shown)} {paths.method} {paths_label}"
        label_input_axes(axes, data, grid)
        axes.set_title(title)
        figure.legend(handles=handles, loc="outside right upper", fontsize=7)
    return figure


def probability_map_figure(
    data: PreparedDataset, classifier: nn.Module, resolution: int = 200, per_class: bool = False
) -> Figure:
    """Max softmax probability over the input grid (or one panel of p_c per class)."""
    grid = input_grid(data, resolution)
    probabilities = torch.softmax(class_logits(classifier, grid.points), dim=-1).numpy()
    classes = probabilities.argmax(-1)
    if per_class:
        panels = [(f"p({name})", probabilities[:, c]) for c, name in enumerate(data.class_names)]
        low = 0.0
    else:
        panels = [("max class probability", probabilities.max(-1))]
        low = 1.0 / data.n_classes  # the smallest possible maximum
    n_cols = min(len(panels), 3)
    n_rows = -(-len(panels) // n_cols)
    with project_style():
        figure = new_figure(0.9 + 2.9 * n_cols, 0.5 + 2.7 * n_rows)
        image = None
        for index, (title, values) in enumerate(panels):
            axes = figure.add_subplot(n_rows, n_cols, index + 1)
            image = axes.imshow(
                grid.image(values),
                origin="lower",
                extent=grid.extent,
                aspect="auto",
                vmin=low,
                vmax=1.0,
                interpolation="nearest",
            )
            draw_boundaries(axes, grid, classes)
            label_input_axes(axes, data, grid)
            axes.grid(False)
            axes.set_title(title)
        figure.colorbar(image, ax=figure.axes, label="probability", shrink=0.9)
        figure.suptitle("Classifier probabilities (white: class boundaries)")
    return figure


def latent_maps_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    generatives: Mapping[str, nn.Module],
    resolution: int = 200,
    latent_range: float = 5.0,
) -> Figure:
    """Per generative model (titled by its key): the latent grid decoded and classified.

    Encoded training points are scattered on top. Raises ValueError unless every model has a
    2-D latent space.
    """
    for name, generative in generatives.items():
        require_2d_latent(generative, data, name)
    grid = latent_grid(resolution, latent_range)
    features, labels = training_sample(data)
    with project_style():
        figure = new_figure(0.9 + 3.9 * len(generatives), 3.9)
        for index, (name, generative) in enumerate(generatives.items()):
            axes = figure.add_subplot(1, len(generatives), index + 1)
            points = decoded(generative, grid.points)
            classes = class_logits(classifier, points).argmax(-1).numpy()
            draw_classes(axes, grid, classes, data.n_classes)
            scatter_points(axes, encoded(generative, features).numpy(), labels, data.n_classes)
            label_latent_axes(axes, grid)
            axes.set_title(name)
        figure.legend(
            handles=class_handles(data.class_names), loc="outside right upper", fontsize=7
        )
    return figure


def latent_map_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    generative: nn.Module,
    resolution: int = 200,
    latent_range: float = 5.0,
    title: str = "Latent class map: class of Dec(z)",
) -> Figure:
    """The latent class map of one generative model (see ``latent_maps_figure``)."""
    return latent_maps_figure(data, classifier, {title: generative}, resolution, latent_range)


def round_trip_figure(
    data: PreparedDataset, generative: nn.Module, resolution: int = 200
) -> Figure:
    """Round-trip error ||Dec(Enc(x)) - x|| over the input grid, log colour scale."""
    grid = input_grid(data, resolution)
    errors = round_trip_errors(data, generative, grid.points)
    positive = errors[errors > 0]
    floor = float(positive.min()) if positive.size else 1e-12
    top = max(float(errors.max()), floor * 10)
    with project_style():
        figure = new_figure(5.4, 4.2)
        axes = figure.add_subplot()
        image = axes.imshow(
            grid.image(np.maximum(errors, floor)),
            origin="lower",
            extent=grid.extent,
            aspect="auto",
            norm=LogNorm(floor, top),
            interpolation="nearest",
        )
        features, _ = training_sample(data, 1000)
        raw = data.denormalise(features)
        axes.scatter(raw[:, 0], raw[:, 1], s=2, c="white", alpha=0.6, linewidths=0, rasterized=True)
        label_input_axes(axes, data, grid)
        axes.grid(False)
        axes.set_title(
            f"Round-trip error ‖Dec(Enc(x)) − x‖, max {errors.max():.2g}\n"
            "(white dots: training data)"
        )
        figure.colorbar(image, ax=axes, label="raw units")
    return figure
