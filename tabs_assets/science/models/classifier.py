"""The MLP classifier (SCIENCE.md §2) and the plain ReLU MLP shared by the other models."""

from collections.abc import Sequence

import torch
from torch import nn


def mlp(input_dim: int, hidden: Sequence[int], output_dim: int) -> nn.Sequential:
    """Linear -> ReLU per hidden layer, then a final Linear (no output activation)."""
    layers: list[nn.Module] = []
    width = input_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class MLPClassifier(nn.Module):
    """(Linear -> Dropout? -> BatchNorm? -> ReLU) per hidden layer, then Linear to C logits."""

    def __init__(
        self,
        input_dim: int,
        n_classes: int,
        hidden: Sequence[int] = (50, 50),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.n_classes = n_classes
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.ReLU())
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [..., C] for inputs [..., D] (flattened to 2-D because BatchNorm1d needs it)."""
        leading = x.shape[:-1]
        logits = self.layers(x.reshape(-1, self.input_dim))
        return logits.reshape(*leading, self.n_classes)
