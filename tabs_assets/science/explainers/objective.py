"""What every search shares: the codec it moves in, the loss along a path and its gradient with
respect to the latents only (nothing accumulates into model parameters)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    DistanceKind,
    SourceMode,
)
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.losses import validity_loss


class Codec(Protocol):
    """What an explainer needs from a generative model."""

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...


class InputSpace(nn.Module):
    """The identity codec of explainers that do not work in latent space (Wachter)."""

    def encode(self, x: Tensor) -> Tensor:
        return x

    def decode(self, z: Tensor) -> Tensor:
        return z


def as_variable(z: Tensor, differentiable: bool) -> Tensor:
    """A latent to differentiate with respect to; keeps the graph to the models only if asked."""
    if differentiable and z.requires_grad:
        return z
    return z.detach().requires_grad_(True)


def distance_term(difference: Tensor, kind: DistanceKind, scale: float) -> Tensor:
    """Per-row distance [...] of ``difference`` [..., D]: smooth L1 with scale s, or plain L1.

    smooth_l1: sum_j sqrt(d_j^2 + s^2) - s, 0 at d = 0, within s of |d| per coordinate.
    """
    if kind == "l1_subgradient":
        return difference.abs().sum(-1)
    return (torch.sqrt(difference * difference + scale * scale) - scale).sum(-1)


@dataclass(frozen=True)
class Distance:
    """lambda_d and the form of the distance term (weight 0: no term)."""

    weight: float = 0.0
    kind: DistanceKind = "smooth_l1"
    scale: float = 0.03


def path_objective(
    z: Tensor,
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    loss: ValidityLossConfig,
    source_mode: SourceMode,
    distance: Distance = Distance(),
) -> Tensor:
    """Per-row L(f(Dec(z))) + lambda_d * dist(Dec(z) - x), evaluated at the CURRENT z: [B]."""
    points = codec.decode(z)
    logits = classifier(points)
    source = logits.argmax(-1) if source_mode == "current" else sources
    value = validity_loss(logits, source, targets, loss)
    if distance.weight:
        value = value + distance.weight * distance_term(
            points - inputs, distance.kind, distance.scale
        )
    return value


def latent_gradient(
    objective: Callable[[Tensor], Tensor], z: Tensor, differentiable: bool
) -> Tensor:
    """grad_z sum_b objective(z)_b (rows are independent, so this is the per-row gradient)."""
    z = as_variable(z, differentiable)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(objective(z).sum(), z, create_graph=differentiable)
    return gradient


def unit_rows(gradient: Tensor) -> Tensor:
    """g / ||g|| per row; a zero gradient stays zero."""
    norm = gradient.norm(dim=-1, keepdim=True)
    return gradient / torch.where(norm > 0, norm, torch.ones_like(norm))
