"""The plane of the 2-D pictures (SCIENCE.md §7.6): grids, bounds and the points drawn on them.

Models always run in normalised space, on a whole grid in one batch; only the axes are in raw
feature units (cake on sea: 0..50). The grid spans the first two features. For cake on sea the
other columns are lifted through the correlation coefficients so the grid lies on the data's
plane; for other data sets they sit at the training mean.
"""

from dataclasses import dataclass

import numpy as np
import torch

from tabs_assets.science.datasets.cake_on_sea import CORRELATION_KEY, lift_to_full_width
from tabs_assets.science.datasets.prepared import PreparedDataset

Bounds = tuple[tuple[float, float], tuple[float, float]]
PADDING = 0.1
"""Share of the training range added on each side of an input map (cake on sea: [-5, 55])."""
GROWTH = 0.5
"""A class map grows to show overshooting paths by at most this share of the data range per
side, so the data keeps most of the picture."""
SCATTER_ROWS = 2000
"""Training points drawn at most: a light backdrop, not the data set."""
EXAMPLE_X1 = 43.0
EXAMPLE_X0 = (37.0, 43.0)
"""The thesis example paths start on x1 = 43, x0 in [37, 43]: inside the cake."""
EXAMPLE_TARGET = 0
"""... and go towards class 0 (the sea)."""


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


def spread_indices(n_total: int, n_wanted: int) -> np.ndarray:
    """Up to ``n_wanted`` indices spread evenly over range(n_total), first and last included."""
    if n_total <= 0 or n_wanted <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n_total - 1, min(n_wanted, n_total)).round().astype(np.int64))


def has_example_paths(data: PreparedDataset) -> bool:
    """True for cake on sea, the data set the example path inputs are defined for."""
    return CORRELATION_KEY in data.extras


def example_path_inputs(data: PreparedDataset, n: int = 20) -> np.ndarray:
    """The thesis example inputs [n, D] (normalised): x1 = 43, x0 in [37, 43], in the cake.

    Only defined for cake on sea (the coordinates are in its raw units).
    """
    if not has_example_paths(data):
        raise ValueError("example path inputs are defined for cake on sea only")
    plane = np.stack([np.linspace(*EXAMPLE_X0, n), np.full(n, EXAMPLE_X1)], axis=1)
    return full_width(data, plane)


def training_sample(data: PreparedDataset, max_rows: int = SCATTER_ROWS) -> tuple[np.ndarray, ...]:
    """Normalised features and labels of at most ``max_rows`` training rows, spread evenly."""
    features, labels = data.split_arrays("train")
    index = spread_indices(len(labels), max_rows)
    return features[index], labels[index]
