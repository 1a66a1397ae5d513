"""The common shape of every data set before splitting."""

from dataclasses import dataclass, field

import numpy as np


class DatasetError(ValueError):
    """Bad or missing data; the message names the file or column and what to do."""


@dataclass(frozen=True)
class TabularData:
    """Features X (N x D, float32), labels y (N, int64 in 0..C-1), and their names.

    ``extras`` holds arrays a data set wants to keep for later (e.g. cake on sea's
    correlation coefficients, which plots need to lift a 2-D grid to D dims).
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_rows, n_features = self.features.shape
        if self.features.dtype != np.float32 or self.labels.dtype != np.int64:
            raise DatasetError("features must be float32 and labels int64")
        if self.labels.shape != (n_rows,):
            raise DatasetError(f"{n_rows} feature rows but labels of shape {self.labels.shape}")
        if len(self.feature_names) != n_features:
            raise DatasetError(f"{n_features} columns but {len(self.feature_names)} names")
        if n_rows and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DatasetError(f"labels must lie in 0..{len(self.class_names) - 1}")
        if not np.isfinite(self.features).all():
            raise DatasetError("features contain NaN or infinite values")
