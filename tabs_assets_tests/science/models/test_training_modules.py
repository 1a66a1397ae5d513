"""tabs_assets.science.models.training_modules: the Lightning modules' losses."""

import torch

from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.training_modules import ClassifierModule


def test_weighted_loss_from_per_sample_weights() -> None:
    torch.manual_seed(0)
    module = ClassifierModule(MLPClassifier(2, 3, [4]), learning_rate=1e-3)
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    losses = torch.nn.functional.cross_entropy(module.model(x), y, reduction="none")
    assert torch.allclose(module.training_loss((x, y, w)), losses[[0, 3]].mean())
    assert torch.allclose(module.training_loss((x, y)), losses.mean())
