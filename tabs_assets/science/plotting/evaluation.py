"""Models evaluated on the points of a picture: eval mode, no gradients, one batch."""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from tabs_assets.science.datasets.prepared import PreparedDataset


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode for the duration (dropout/batch norm off), each submodule's mode restored."""
    modes = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    for module in modules:
        if module is not None:
            module.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def as_tensor(points: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(points, dtype=np.float32))


@torch.no_grad()
def class_logits(classifier: nn.Module, points: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Classifier logits [N, C] for normalised points [N, D], one batch, eval mode."""
    with eval_mode(classifier):
        return classifier(as_tensor(points))


@torch.no_grad()
def decoded(generative: nn.Module, latents: np.ndarray | torch.Tensor) -> torch.Tensor:
    with eval_mode(generative):
        return generative.decode(as_tensor(latents))


@torch.no_grad()
def encoded(generative: nn.Module, points: np.ndarray | torch.Tensor) -> torch.Tensor:
    with eval_mode(generative):
        return generative.encode(as_tensor(points))


def latent_width(generative: nn.Module, data: PreparedDataset) -> int:
    """Width H of the generative model's latent space (from encoding one training row)."""
    features, _ = data.split_arrays("train")
    return int(encoded(generative, features[:1]).shape[-1])


def require_2d_latent(generative: nn.Module, data: PreparedDataset, name: str) -> None:
    width = latent_width(generative, data)
    if width != 2:
        raise ValueError(
            f"{name}: a latent map needs a 2-D latent space, the generative model has {width} "
            "latent dims (skip this figure for it)"
        )


def round_trip_errors(
    data: PreparedDataset, generative: nn.Module, points: np.ndarray
) -> np.ndarray:
    """||Dec(Enc(x)) - x||_2 in raw units for normalised points [N, D]: [N]."""
    reconstructed = decoded(generative, encoded(generative, points)).numpy()
    return np.linalg.norm((reconstructed - points) * data.std, axis=-1)
