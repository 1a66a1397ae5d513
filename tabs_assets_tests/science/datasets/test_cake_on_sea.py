"""tabs_assets.science.datasets.cake_on_sea: the generated data set."""

import numpy as np

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea


def test_cake_on_sea_check_figure() -> None:
    data = make_cake_on_sea(CakeOnSeaConfig(seed=42, n_points=100_000, n_dims=2))
    assert len(data.labels) == 96_011
    assert np.bincount(data.labels).tolist() == [49_940, 42_112, 3_959]
