"""One entry point from any dataset config to its TabularData (SCIENCE.md §1).

Dispatch is a ``match`` on the config class: nothing is ever imported from a name in a config.
"""

from pathlib import Path

from tabs_assets.config.datasets import (
    CakeOnSeaConfig,
    DatasetConfig,
    ForestCoverConfig,
    OnlineNewsConfig,
    SklearnDatasetConfig,
    TabularFileConfig,
    WineQualityConfig,
)
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.sklearn_data import load_sklearn_dataset
from tabs_assets.science.datasets.tabular import TabularData
from tabs_assets.science.datasets.tabular_file import load_tabular_file
from tabs_assets.science.datasets.uci import load_forest_cover, load_online_news, load_wine_quality


def load_tabular_data(config: DatasetConfig, raw_dir: Path) -> TabularData:
    """The data set a config describes; ``raw_dir`` is the UCI download cache."""
    match config:
        case CakeOnSeaConfig():
            return make_cake_on_sea(config)
        case ForestCoverConfig():
            return load_forest_cover(config, raw_dir)
        case WineQualityConfig():
            return load_wine_quality(config, raw_dir)
        case OnlineNewsConfig():
            return load_online_news(config, raw_dir)
        case SklearnDatasetConfig():
            return load_sklearn_dataset(config)
        case TabularFileConfig():
            return load_tabular_file(config)
    raise TypeError(f"no loader for dataset config {type(config).__name__}")
