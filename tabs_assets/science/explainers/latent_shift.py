"""Latent Shift (SCIENCE.md §4): one gradient at z0 = E(x), z_i = z0 - i * step_size * g,
optionally the original Gifsplanation threshold search for the step size."""

import math

import torch
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    LatentShiftConfig,
    ThresholdSearchConfig,
)
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.explainers.objective import (
    Codec,
    as_variable,
    latent_gradient,
    path_objective,
    unit_rows,
)
from tabs_assets.science.losses import pick


def _search_shifts(
    z0: Tensor,
    gradient: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    step_size: float,
    search: ThresholdSearchConfig,
) -> Tensor:
    """Per-row lambda*: the first step_size * growth^k (capped at max_shift) with p_t >= threshold.

    All candidate shifts are decoded in one [K, B, H] call; rows that never cross get max_shift.
    The search is a discrete choice, so it carries no gradient.
    """
    n_tries = max(0, math.ceil(math.log(search.max_shift / step_size) / math.log(search.growth)))
    candidates = step_size * search.growth ** torch.arange(n_tries + 1, dtype=torch.float64)
    candidates = candidates.clamp(max=search.max_shift).to(device=z0.device, dtype=z0.dtype)
    with torch.no_grad():
        shifted = z0.detach() - candidates[:, None, None] * gradient.detach()
        probabilities = torch.softmax(classifier(codec.decode(shifted)), dim=-1)
        crossed = pick(probabilities, targets) >= search.threshold  # [K, B]
    first = crossed.int().argmax(0)  # index of the first crossing (0 when none)
    return torch.where(crossed.any(0), candidates[first], candidates.new_tensor(search.max_shift))


def latent_shift(
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    config: LatentShiftConfig,
    loss: ValidityLossConfig,
    differentiable: bool,
) -> Tensor:
    """z_i = z0 - shift_i * g for i = 0..M with one gradient at z0: latents [S, B, H]."""
    z0 = as_variable(codec.encode(inputs), differentiable)

    def objective(z: Tensor) -> Tensor:
        return path_objective(z, inputs, sources, targets, classifier, codec, loss, config.source)

    gradient = latent_gradient(objective, z0, differentiable)
    if config.normalize_gradient:
        gradient = unit_rows(gradient)
    n_points = config.n_steps + 1
    if config.threshold_search is None:
        steps = torch.arange(n_points, device=z0.device, dtype=z0.dtype)
        shifts = (steps * config.step_size)[:, None]  # [S, 1]: the same for every row
    else:
        largest = _search_shifts(
            z0, gradient, targets, classifier, codec, config.step_size, config.threshold_search
        )
        fractions = torch.linspace(0.0, 1.0, n_points, device=z0.device, dtype=z0.dtype)
        shifts = fractions[:, None] * largest[None, :]  # [S, B]: frames spread over [0, lambda*]
    if not differentiable:
        z0 = z0.detach()
    return z0[None] - shifts[..., None] * gradient[None]
