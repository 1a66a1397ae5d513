"""tabs_assets.science.models.data: training batches."""

import numpy as np
import torch

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.config.models import (
    TrainingConfig,
    resolve_batch_size,
)
from tabs_assets.science.models.data import TensorBatches, training_batches
from tabs_assets_tests.science.models.conftest import prepared


def test_default_batch_size_gives_twenty_batches() -> None:
    assert resolve_batch_size(57_606, None) == 2_881
    assert resolve_batch_size(57_606, 128) == 128
    data = prepared(CakeOnSeaConfig())
    batches = training_batches(data, TrainingConfig())
    assert batches.batch_size == 2_881
    assert len(batches) == 20


def test_tensor_batches_shuffle_and_slices() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    ordered = list(TensorBatches((x, y), batch_size=4))
    assert [len(b[0]) for b in ordered] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in ordered]), y)
    shuffled = TensorBatches((x, y), batch_size=4, shuffle=True, seed=3)
    first = torch.cat([b[1] for b in shuffled])
    second = torch.cat([b[1] for b in shuffled])
    assert sorted(first.tolist()) == list(range(10))
    assert not torch.equal(first, second)  # a new permutation each epoch
    assert torch.equal(torch.cat([b[0][:, 0] for b in shuffled]).long().sort().values, y)
    again = TensorBatches((x, y), batch_size=4, shuffle=True, seed=3)
    assert torch.equal(torch.cat([b[1] for b in again]), first)  # seeded


def test_tensor_batches_drop_a_single_row_tail_when_shuffling() -> None:
    x = torch.arange(9.0).unsqueeze(1)
    batches = TensorBatches((x,), batch_size=4, shuffle=True)
    assert len(batches) == 2
    assert [len(b[0]) for b in batches] == [4, 4]


def test_balanced_sampling_draws_classes_at_equal_rates() -> None:
    data = prepared(CakeOnSeaConfig(n_points=20_000))
    counts = np.asarray(data.class_counts("train"))
    assert counts.min() < 0.1 * counts.sum()  # the cake is a small minority
    batches = training_batches(data, TrainingConfig(balance_classes=True))
    labels = torch.cat([b[1] for b in batches])
    assert len(labels) == counts.sum()
    shares = torch.bincount(labels, minlength=3).double() / len(labels)
    assert torch.allclose(shares, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)
