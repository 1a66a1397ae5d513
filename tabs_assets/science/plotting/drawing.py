"""Drawing primitives of the 2-D pictures: class backgrounds, points, paths, boundaries, axes."""

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.science.plotting.grids import Grid, training_sample
from tabs_assets.science.plotting.style import CLASS_COLORS

CLASS_ALPHA = 0.35


def class_palette(n_classes: int) -> list[str]:
    """One colour per class (the project colours, cycled for many classes)."""
    return [CLASS_COLORS[index % len(CLASS_COLORS)] for index in range(n_classes)]


def draw_classes(
    axes: Axes, grid: Grid, classes: np.ndarray, n_classes: int, alpha: float = CLASS_ALPHA
) -> None:
    """Predicted classes per grid point [R*R] as a coloured background."""
    axes.imshow(
        grid.image(classes),
        origin="lower",
        extent=grid.extent,
        aspect="auto",
        cmap=ListedColormap(class_palette(n_classes)),
        vmin=-0.5,
        vmax=n_classes - 0.5,
        alpha=alpha,
        interpolation="nearest",
    )
    axes.grid(False)


def class_handles(class_names: Sequence[str], alpha: float = CLASS_ALPHA) -> list[Patch]:
    colours = class_palette(len(class_names))
    return [
        Patch(color=colour, alpha=alpha, label=name)
        for colour, name in zip(colours, class_names, strict=True)
    ]


def scatter_points(axes: Axes, xy: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    """Points [N, 2] in drawing units, lightly, coloured by label."""
    colours = np.asarray(class_palette(n_classes))[labels]
    axes.scatter(xy[:, 0], xy[:, 1], c=colours, s=1.5, alpha=0.5, linewidths=0, rasterized=True)


def scatter_training(axes: Axes, data: PreparedDataset) -> None:
    features, labels = training_sample(data)
    scatter_points(axes, data.denormalise(features)[:, :2], labels, data.n_classes)


def label_input_axes(axes: Axes, data: PreparedDataset, grid: Grid) -> None:
    axes.set_xlim(grid.extent[:2])
    axes.set_ylim(grid.extent[2:])
    axes.set_xlabel(data.feature_names[0])
    axes.set_ylabel(data.feature_names[1])


def label_latent_axes(axes: Axes, grid: Grid) -> None:
    axes.set_xlim(grid.extent[:2])
    axes.set_ylim(grid.extent[2:])
    axes.set_xlabel("z0")
    axes.set_ylabel("z1")


def draw_paths(
    axes: Axes, data: PreparedDataset, paths: CounterfactualPaths, index: np.ndarray
) -> list[Line2D]:
    """Selected paths in raw units, coloured by target class; legend handles for them."""
    raw = data.denormalise(paths.points[:, index].numpy())[..., :2]  # [S, b, 2]
    targets = paths.targets[index].numpy()
    colours = np.asarray(class_palette(data.n_classes))[targets]
    lines = LineCollection(list(raw.transpose(1, 0, 2)), colors=colours, linewidths=1.4)
    axes.add_collection(lines)
    axes.scatter(raw[0, :, 0], raw[0, :, 1], s=22, facecolor="white", edgecolor=colours, zorder=3)
    axes.scatter(
        raw[-1, :, 0], raw[-1, :, 1], s=30, marker="X", c=colours, edgecolor="black", zorder=3
    )
    handles = [
        Line2D([], [], color=class_palette(data.n_classes)[t], label=f"to {data.class_names[t]}")
        for t in np.unique(targets)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="start"),
        Line2D([], [], ls="", marker="X", mfc="grey", mec="black", label="end"),
    ]
    return handles


def boundary_mask(classes_image: np.ndarray) -> np.ndarray:
    """True on grid cells whose right or upper neighbour has another class."""
    mask = np.zeros(classes_image.shape, dtype=bool)
    mask[:, :-1] |= classes_image[:, 1:] != classes_image[:, :-1]
    mask[:-1, :] |= classes_image[1:, :] != classes_image[:-1, :]
    return mask


def draw_boundaries(axes: Axes, grid: Grid, classes: np.ndarray, colour: str = "white") -> None:
    """Class boundaries of a predicted-class grid as thin lines of pixels."""
    mask = boundary_mask(grid.image(classes))
    overlay = np.ma.masked_where(~mask, np.ones(mask.shape))
    axes.imshow(
        overlay,
        origin="lower",
        extent=grid.extent,
        aspect="auto",
        cmap=ListedColormap([colour]),
        interpolation="nearest",
    )
