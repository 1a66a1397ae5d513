"""2-D pictures (SCIENCE.md §7.6): class, probability, latent and round-trip maps.

Models always run in normalised space, on a whole grid in one batch; only the axes are in raw
feature units (cake on sea: 0..50). The grid spans the first two features. For cake on sea the
other columns are lifted through the correlation coefficients so the grid lies on the data's
plane; for other data sets they sit at the training mean.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from torch import nn

from tabs_assets.science.datasets.cake_on_sea import CORRELATION_KEY, lift_to_full_width
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers import CounterfactualPaths
from tabs_assets.science.plotting.style import CLASS_COLORS, new_figure, project_style

Bounds = tuple[tuple[float, float], tuple[float, float]]
PADDING = 0.1
"""Share of the training range added on each side of an input map (cake on sea: [-5, 55])."""
GROWTH = 0.5
"""A class map grows to show overshooting paths by at most this share of the data range per
side, so the data keeps most of the picture."""
SCATTER_ROWS = 2000
"""Training points drawn at most: a light backdrop, not the data set."""
CLASS_ALPHA = 0.35
EXAMPLE_X1 = 43.0
EXAMPLE_X0 = (37.0, 43.0)
"""The thesis example paths start on x1 = 43, x0 in [37, 43]: inside the cake."""


# --------------------------------------------------------------------------------------------
# Grids and model evaluation


@dataclass(frozen=True)
class Grid:
    """A regular grid over two axes; ``points`` [R*R, W] in model space, x0 varying fastest."""

    x0: np.ndarray  # [R] axis values in drawing units
    x1: np.ndarray  # [R]
    points: np.ndarray  # [R*R, W] float32

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return (float(self.x0[0]), float(self.x0[-1]), float(self.x1[0]), float(self.x1[-1]))

    def image(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """Per-point values [R*R, ...] as an image [R(x1), R(x0), ...] for origin='lower'."""
        array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        return np.asarray(array).reshape(len(self.x1), len(self.x0), *array.shape[1:])


def class_palette(n_classes: int) -> list[str]:
    """One colour per class (the project colours, cycled for many classes)."""
    return [CLASS_COLORS[index % len(CLASS_COLORS)] for index in range(n_classes)]


def is_planar(data: PreparedDataset) -> bool:
    """True when the data has exactly two free dimensions, so a 2-D map shows all of it."""
    coefficients = data.extras.get(CORRELATION_KEY)
    if coefficients is not None:
        return int(coefficients.shape[0]) == 2
    return data.input_dim == 2


def raw_bounds(data: PreparedDataset) -> Bounds:
    """Training range of the first two raw features, padded by ``PADDING`` on each side."""
    train = data.features[data.split_indices["train"], :2].astype(np.float64)
    low, high = train.min(axis=0), train.max(axis=0)
    pad = PADDING * np.maximum(high - low, 1e-6)
    return (float(low[0] - pad[0]), float(high[0] + pad[0])), (
        float(low[1] - pad[1]),
        float(high[1] + pad[1]),
    )


def covering_bounds(data: PreparedDataset, raw_xy: np.ndarray) -> Bounds:
    """``raw_bounds`` grown to show points [..., 2] too, by at most ``GROWTH`` of the range.

    So paths that overshoot the data stay visible without a stray point shrinking the map.
    """
    bounds = np.asarray(raw_bounds(data))  # [[low0, high0], [low1, high1]]
    xy = raw_xy.reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return raw_bounds(data)
    span = bounds[:, 1] - bounds[:, 0]
    margin = 0.03 * span
    low = np.clip(xy.min(axis=0) - margin, bounds[:, 0] - GROWTH * span, bounds[:, 0])
    high = np.clip(xy.max(axis=0) + margin, bounds[:, 1], bounds[:, 1] + GROWTH * span)
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def full_width(data: PreparedDataset, plane: np.ndarray) -> np.ndarray:
    """Raw (x0, x1) pairs [N, 2] -> normalised full-width points [N, D] (see module doc)."""
    if data.input_dim < 2:
        raise ValueError(f"2-D maps need at least 2 features, the data set has {data.input_dim}")
    raw = np.repeat(data.mean[None].astype(np.float64), len(plane), axis=0)
    raw[:, :2] = plane
    coefficients = data.extras.get(CORRELATION_KEY)
    if coefficients is not None and coefficients.size:
        n_free = int(coefficients.shape[0])
        raw = lift_to_full_width(raw[:, :n_free], coefficients).astype(np.float64)
    return data.normalise(raw)


def input_grid(data: PreparedDataset, resolution: int, bounds: Bounds | None = None) -> Grid:
    """A grid over the first two raw features; points are normalised, full width."""
    (low0, high0), (low1, high1) = bounds or raw_bounds(data)
    x0 = np.linspace(low0, high0, resolution)
    x1 = np.linspace(low1, high1, resolution)
    mesh0, mesh1 = np.meshgrid(x0, x1)
    return Grid(x0, x1, full_width(data, np.stack([mesh0.ravel(), mesh1.ravel()], axis=1)))


def latent_grid(resolution: int, latent_range: float) -> Grid:
    """A grid over [-r, r]² of a 2-D latent space."""
    axis = np.linspace(-latent_range, latent_range, resolution)
    mesh0, mesh1 = np.meshgrid(axis, axis)
    return Grid(axis, axis, np.stack([mesh0.ravel(), mesh1.ravel()], axis=1).astype(np.float32))


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode for the duration (dropout/batch norm off), each submodule's mode restored."""
    modes = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    for module in modules:
        if module is not None:
            module.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def as_tensor(points: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(points, dtype=np.float32))


@torch.no_grad()
def class_logits(classifier: nn.Module, points: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Classifier logits [N, C] for normalised points [N, D], one batch, eval mode."""
    with eval_mode(classifier):
        return classifier(as_tensor(points))


@torch.no_grad()
def decoded(generative: nn.Module, latents: np.ndarray | torch.Tensor) -> torch.Tensor:
    with eval_mode(generative):
        return generative.decode(as_tensor(latents))


@torch.no_grad()
def encoded(generative: nn.Module, points: np.ndarray | torch.Tensor) -> torch.Tensor:
    with eval_mode(generative):
        return generative.encode(as_tensor(points))


def latent_width(generative: nn.Module, data: PreparedDataset) -> int:
    """Width H of the generative model's latent space (from encoding one training row)."""
    features, _ = data.split_arrays("train")
    return int(encoded(generative, features[:1]).shape[-1])


def require_2d_latent(generative: nn.Module, data: PreparedDataset, name: str) -> None:
    width = latent_width(generative, data)
    if width != 2:
        raise ValueError(
            f"{name}: a latent map needs a 2-D latent space, the generative model has {width} "
            "latent dims (skip this figure for it)"
        )


def spread_indices(n_total: int, n_wanted: int) -> np.ndarray:
    """Up to ``n_wanted`` indices spread evenly over range(n_total), first and last included."""
    if n_total <= 0 or n_wanted <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n_total - 1, min(n_wanted, n_total)).round().astype(np.int64))


def example_path_inputs(data: PreparedDataset, n: int = 20) -> np.ndarray:
    """The thesis example inputs [n, D] (normalised): x1 = 43, x0 in [37, 43], in the cake.

    Only defined for cake on sea (the coordinates are in its raw units).
    """
    if CORRELATION_KEY not in data.extras:
        raise ValueError("example path inputs are defined for cake on sea only")
    plane = np.stack([np.linspace(*EXAMPLE_X0, n), np.full(n, EXAMPLE_X1)], axis=1)
    return full_width(data, plane)


def training_sample(data: PreparedDataset, max_rows: int = SCATTER_ROWS) -> tuple[np.ndarray, ...]:
    """Normalised features and labels of at most ``max_rows`` training rows, spread evenly."""
    features, labels = data.split_arrays("train")
    index = spread_indices(len(labels), max_rows)
    return features[index], labels[index]


# --------------------------------------------------------------------------------------------
# Drawing pieces


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


# --------------------------------------------------------------------------------------------
# Figures


def class_map_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    paths: CounterfactualPaths | None = None,
    n_paths: int = 20,
    resolution: int = 200,
) -> Figure:
    """Predicted class over the input grid, training points, and up to ``n_paths`` paths."""
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
            title += f" and {len(shown)} {paths.method} paths"
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


def round_trip_errors(
    data: PreparedDataset, generative: nn.Module, points: np.ndarray
) -> np.ndarray:
    """||Dec(Enc(x)) - x||_2 in raw units for normalised points [N, D]: [N]."""
    reconstructed = decoded(generative, encoded(generative, points)).numpy()
    return np.linalg.norm((reconstructed - points) * data.std, axis=-1)


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
