"""NICE normalizing flow (SCIENCE.md §2): additive couplings + diagonal scaling, latent = D."""

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tabs_assets.science.models.classifier import mlp

Prior = Literal["gaussian", "logistic"]


class AdditiveCoupling(nn.Module):
    """One coupling layer on 0-based columns.

    ``keep_odd=True`` (an "odd" layer) keeps the odd columns and updates the even ones:
    x_even <- x_even + m(x_odd); ``keep_odd=False`` does the reverse. Strided slices of the last
    dim make it work for any leading shape, for D = 2 and for odd D (halves of different size).
    """

    def __init__(self, input_dim: int, hidden: Sequence[int], keep_odd: bool) -> None:
        super().__init__()
        if input_dim < 2:
            raise ValueError(f"NICE needs at least 2 input columns, got {input_dim}")
        self.keep_odd = keep_odd
        self.keep = slice(1, None, 2) if keep_odd else slice(0, None, 2)
        self.update = slice(0, None, 2) if keep_odd else slice(1, None, 2)
        columns = range(input_dim)
        self.shift = mlp(len(columns[self.keep]), hidden, len(columns[self.update]))

    def _couple(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        out = x.clone()
        out[..., self.update] = x[..., self.update] + sign * self.shift(x[..., self.keep])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._couple(x, 1.0)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        # The kept half passes through unchanged, so m(kept) is recomputed exactly.
        return self._couple(y, -1.0)


class Nice(nn.Module):
    """Alternating odd/even additive couplings, then z = h * exp(s) with s initialised to 0."""

    def __init__(
        self,
        input_dim: int,
        coupling_layers: int = 4,
        hidden: Sequence[int] = (20, 20),
        prior: Prior = "gaussian",
    ) -> None:
        super().__init__()
        if prior not in ("gaussian", "logistic"):
            raise ValueError(f"unknown prior {prior!r}; use 'gaussian' or 'logistic'")
        self.input_dim = input_dim
        self.prior = prior
        # Layer 0 is "odd" (keeps odd columns), layer 1 "even", and so on.
        self.couplings = nn.ModuleList(
            AdditiveCoupling(input_dim, hidden, keep_odd=(i % 2 == 0))
            for i in range(coupling_layers)
        )
        self.log_scale = nn.Parameter(torch.zeros(input_dim))

    @property
    def latent_dim(self) -> int:
        return self.input_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> z [..., D]."""
        h = x
        for coupling in self.couplings:
            h = coupling(h)
        return h * torch.exp(self.log_scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] -> x [..., D], the exact inverse of ``encode``."""
        h = z * torch.exp(-self.log_scale)
        for coupling in reversed(self.couplings):
            h = coupling.inverse(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def log_det_jacobian(self) -> torch.Tensor:
        """log|det dz/dx| = sum(s): additive couplings are volume preserving."""
        return self.log_scale.sum()

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row, [..., D] -> [...]."""
        if self.prior == "gaussian":
            return -0.5 * z.pow(2).sum(-1) - 0.5 * self.input_dim * math.log(2 * math.pi)
        return -(F.softplus(z) + F.softplus(-z)).sum(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per row, [..., D] -> [...]."""
        return self.prior_log_prob(self.encode(x)) + self.log_det_jacobian()

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Batch mean of the negative log-likelihood (the training loss)."""
        return -self.log_prob(x).mean()
