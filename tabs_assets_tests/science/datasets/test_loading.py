"""tabs_assets.science.datasets.loading: the dispatch to each loader."""

from pathlib import Path

import numpy as np

from tabs_assets.config.datasets import CakeOnSeaConfig, SklearnDatasetConfig
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.loading import load_tabular_data
from tabs_assets_tests.science.datasets.test_tabular_file import file_config, patients, write


def test_dispatch_reaches_each_loader(tmp_path: Path):
    cake_config = CakeOnSeaConfig(n_points=500)
    cake = load_tabular_data(cake_config, tmp_path)
    np.testing.assert_array_equal(cake.features, make_cake_on_sea(cake_config).features)

    iris = load_tabular_data(SklearnDatasetConfig(name="iris"), tmp_path)
    assert iris.features.shape == (150, 4)

    path = write(patients(), tmp_path / "patients.csv")
    table = load_tabular_data(file_config(path), tmp_path / "unused")
    assert table.feature_names[1] == "chest_pain=atypical"
    assert not (tmp_path / "unused").exists()
