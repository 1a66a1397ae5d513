"""What the models' tests share: a small cake-on-sea data set, prepared once per module."""

import pytest
import torch

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.prepared import PreparedDataset, prepare_dataset


def prepared(config: CakeOnSeaConfig) -> PreparedDataset:
    return prepare_dataset(make_cake_on_sea(config), config.split)


@pytest.fixture(scope="module")
def tiny_data() -> PreparedDataset:
    return prepared(CakeOnSeaConfig(n_points=3000))


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
