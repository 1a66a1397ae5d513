"""REVISE and Wachter (SCIENCE.md §4): gradient descent in latent space (REVISE) or input space
(Wachter) with a distance term to the input, by SGD or Adam."""

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    ReviseConfig,
    WachterConfig,
)
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.explainers.objective import (
    Codec,
    Distance,
    latent_gradient,
    path_objective,
)


class _SgdStep:
    """z - eta * g (out of place, so it keeps a graph when one is wanted)."""

    def __init__(self, step_size: float) -> None:
        self.step_size = step_size

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        return z - self.step_size * gradient


class _TorchAdamStep:
    """torch.optim.Adam over the latent tensor, lr = step_size."""

    def __init__(self, z0: Tensor, step_size: float) -> None:
        self.z = z0.detach().clone()
        self.optimizer = torch.optim.Adam([self.z], lr=step_size)

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        self.z.grad = gradient.detach()
        self.optimizer.step()
        return self.z.detach().clone()


class _FunctionalAdamStep:
    """The update of torch.optim.Adam (default betas/eps), out of place so it stays differentiable.

    Only used when the latents must carry a graph to the generative model (path regularisation
    with ``detach_latents`` False): torch's optimiser updates leaves in place.
    """

    def __init__(self, step_size: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.step_size, self.betas, self.eps = step_size, betas, 1e-8
        self.first: Tensor | float = 0.0
        self.second: Tensor | float = 0.0
        self.count = 0

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        beta1, beta2 = self.betas
        self.count += 1
        self.first = beta1 * self.first + (1 - beta1) * gradient
        self.second = beta2 * self.second + (1 - beta2) * gradient * gradient
        correction1 = 1 - beta1**self.count
        correction2 = math.sqrt(1 - beta2**self.count)
        denominator = self.second.sqrt() / correction2 + self.eps
        return z - (self.step_size / correction1) * self.first / denominator


def descent(
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    config: ReviseConfig | WachterConfig,
    loss: ValidityLossConfig,
    differentiable: bool,
) -> Tensor:
    """REVISE / Wachter: z <- z - eta * grad[L(f(Dec(z))) + lambda_d dist(Dec(z) - x)]: [S, B, H].

    A new gradient every ``gradient_every`` steps, the last one reused in between.
    """
    z = codec.encode(inputs)
    if not differentiable:
        z = z.detach()
    if config.optimizer == "sgd":
        step: Callable[[Tensor, Tensor], Tensor] = _SgdStep(config.step_size)
    elif differentiable:
        step = _FunctionalAdamStep(config.step_size)
    else:
        step = _TorchAdamStep(z, config.step_size)

    def objective(latent: Tensor) -> Tensor:
        return path_objective(
            latent,
            inputs,
            sources,
            targets,
            classifier,
            codec,
            loss,
            config.source,
            Distance(config.distance_weight, config.distance, config.distance_scale),
        )

    latents = [z]
    gradient = torch.zeros_like(z)
    for index in range(config.n_steps):
        if index % config.gradient_every == 0:
            gradient = latent_gradient(objective, z, differentiable)
        z = step(z, gradient)
        latents.append(z)
    return torch.stack(latents)
