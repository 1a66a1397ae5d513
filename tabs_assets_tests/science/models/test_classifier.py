"""tabs_assets.science.models.classifier: the MLP classifier."""

import pytest
import torch

from tabs_assets.science.models.classifier import MLPClassifier


@pytest.mark.parametrize("batch_norm", [False, True])
def test_classifier_accepts_any_leading_shape(batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = MLPClassifier(4, 3, hidden=[8, 8], dropout=0.1, batch_norm=batch_norm).eval()
    paths = torch.randn(5, 6, 4)
    logits = model(paths)
    assert logits.shape == (5, 6, 3)
    assert torch.allclose(logits[2], model(paths[2]), atol=1e-6)
    assert model(torch.randn(4)).shape == (3,)


def test_classifier_layer_order() -> None:
    model = MLPClassifier(2, 3, hidden=[5], dropout=0.2, batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "Dropout", "BatchNorm1d", "ReLU", "Linear"]
