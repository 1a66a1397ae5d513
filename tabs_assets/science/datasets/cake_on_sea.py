"""Cake on sea (SCIENCE.md §1.1): a synthetic 3-class data set with a hole and a small cake."""

import numpy as np

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.science.datasets.tabular import TabularData

LOW, HIGH = 0.0, 50.0
DEAD_ZONE = ((35.0, 45.0), (25.0, 35.0))
CAKE = ((35.0, 45.0), (35.0, 45.0))
SEA_BAND = (25.0, 50.0)
CORRELATION_KEY = "correlation_coefficients"


def _inside(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (values >= bounds[0]) & (values <= bounds[1])


def cake_on_sea_labels(points: np.ndarray) -> np.ndarray:
    """Class of each point from its first two columns; later rules overwrite earlier ones."""
    x0, x1 = points[:, 0], points[:, 1]
    labels = np.zeros(len(points), dtype=np.int64)
    labels[_inside(x1, SEA_BAND) & _inside(x0, (LOW, HIGH))] = 1
    labels[_inside(x0, CAKE[0]) & _inside(x1, CAKE[1])] = 2
    return labels


def lift_to_full_width(grid: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """[g | g @ Cm]: a grid over the uncorrelated dims lifted to all dims (no noise)."""
    return np.concatenate([grid, grid @ coefficients], axis=1).astype(np.float32)


def make_cake_on_sea(config: CakeOnSeaConfig) -> TabularData:
    """Draw the data set; one generator, draws in the documented order."""
    rng = np.random.default_rng(config.seed)
    shape = (config.n_points, config.n_uncorrelated_dims)
    if config.gaussian:
        base = rng.normal(25.0, 25.0 / 3.0, size=shape)
    else:
        base = rng.uniform(LOW, HIGH, size=shape)
    dead = _inside(base[:, 0], DEAD_ZONE[0]) & _inside(base[:, 1], DEAD_ZONE[1])
    base = base[~dead]
    labels = cake_on_sea_labels(base)
    n_extra = config.n_dims - config.n_uncorrelated_dims
    coefficients = rng.uniform(-10.0, 10.0, size=(config.n_uncorrelated_dims, n_extra))
    noise = rng.normal(0.0, 1.0, size=(len(base), n_extra))
    features = np.concatenate([base, base @ coefficients + noise], axis=1).astype(np.float32)
    return TabularData(
        features=features,
        labels=labels,
        feature_names=[f"x{i}" for i in range(config.n_dims)],
        class_names=["sea", "land", "cake"],
        extras={CORRELATION_KEY: coefficients.astype(np.float32)},
    )
