"""tabs_assets.science.datasets.sklearn_data: scikit-learn's bundled data sets."""

import numpy as np

from tabs_assets.config.datasets import SklearnDatasetConfig
from tabs_assets.science.datasets.sklearn_data import load_sklearn_dataset


def test_breast_cancer_shape_and_classes():
    data = load_sklearn_dataset(SklearnDatasetConfig(name="breast_cancer"))

    assert data.features.shape == (569, 30)
    assert data.features.dtype == np.float32
    assert data.labels.dtype == np.int64
    assert data.class_names == ["malignant", "benign"]
    assert np.bincount(data.labels).tolist() == [212, 357]
    assert data.feature_names[0] == "mean radius"


def test_wine_shape_and_classes():
    data = load_sklearn_dataset(SklearnDatasetConfig(name="wine"))

    assert data.features.shape == (178, 13)
    assert np.bincount(data.labels).tolist() == [59, 71, 48]
    assert len(data.class_names) == 3
    assert data.feature_names[0] == "alcohol"


def test_digits_class_names_are_text():
    data = load_sklearn_dataset(SklearnDatasetConfig(name="digits"))

    assert data.features.shape == (1797, 64)
    assert data.class_names == [str(digit) for digit in range(10)]
