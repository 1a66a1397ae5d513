"""Real tabular data bundled with scikit-learn (SCIENCE.md §1.3): needs no network."""

from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.utils import Bunch

from tabs_assets.config.datasets import SklearnDatasetConfig
from tabs_assets.science.datasets.tabular import TabularData

SKLEARN_LOADERS: dict[str, Callable[[], Bunch]] = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
    "digits": load_digits,
}


def load_sklearn_dataset(config: SklearnDatasetConfig) -> TabularData:
    """Features as float32, labels as int64, with the data set's feature and class names."""
    bunch = SKLEARN_LOADERS[config.name]()
    return TabularData(
        features=np.asarray(bunch.data, dtype=np.float32),
        labels=np.asarray(bunch.target, dtype=np.int64),
        feature_names=[str(name) for name in bunch.feature_names],
        class_names=[str(name) for name in bunch.target_names],
    )
