"""AE and VAE (SCIENCE.md §2): alternative generative models for the explainers."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tabs_assets.science.models.classifier import mlp


class Autoencoder(nn.Module):
    """Deterministic autoencoder: MLP encoder to ``latent_dim``, mirrored MLP decoder."""

    def __init__(self, input_dim: int, latent_dim: int, hidden: Sequence[int] = (50, 50)) -> None:
        super().__init__()
        self.input_dim = input_dim
        self._latent_dim = latent_dim
        self.encoder = mlp(input_dim, hidden, latent_dim)
        self.decoder = mlp(latent_dim, list(reversed(hidden)), input_dim)

    @property
    def latent_dim(self) -> int:
        return self._latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> z [..., H]."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., H] -> x [..., D]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction MSE (mean over rows and columns)."""
        return F.mse_loss(self(x), x)


class Vae(nn.Module):
    """VAE with a Gaussian encoder; ``encode`` is the mean in eval mode, a sample in training.

    Loss = reconstruction MSE (mean over rows and columns) + beta * KL(q(z|x) || N(0, I)),
    the KL summed over latent dims and averaged over rows.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        hidden: Sequence[int] = (50, 50),
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self._latent_dim = latent_dim
        self.beta = beta
        self.encoder = mlp(input_dim, hidden, 2 * latent_dim)
        self.decoder = mlp(latent_dim, list(reversed(hidden)), input_dim)

    @property
    def latent_dim(self) -> int:
        return self._latent_dim

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), each [..., H]."""
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return mean, log_var

    def _latent(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mean
        return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> z [..., H]: the mean at eval, a reparameterised sample in training."""
        return self._latent(*self.encode_distribution(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., H] -> x [..., D]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.encode_distribution(x)
        reconstruction = F.mse_loss(self.decode(self._latent(mean, log_var)), x)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1).mean()
        return reconstruction + self.beta * kl
