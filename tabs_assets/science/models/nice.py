"""NICE normalizing flow (SCIENCE.md §2): additive couplings + diagonal scaling, latent = D."""

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tabs_assets.science.models.classifier import mlp

Prior = Literal["gaussian", "logistic"]


def split_halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(even columns, odd columns) of the last dim, 0-based, as contiguous tensors."""
    return x[..., 0::2].contiguous(), x[..., 1::2].contiguous()


def merge_halves(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """Interleave the halves back into [..., D]."""
    out = even.new_empty((*even.shape[:-1], even.shape[-1] + odd.shape[-1]))
    out[..., 0::2] = even
    out[..., 1::2] = odd
    return out


class AdditiveCoupling(nn.Module):
    """One coupling layer on 0-based columns.

    ``keep_odd=True`` (an "odd" layer) keeps the odd columns and updates the even ones:
    x_even <- x_even + m(x_odd); ``keep_odd=False`` does the reverse. Works on the two halves
    directly, so a stack of layers splits and interleaves the columns only once; any leading
    shape, D = 2 and odd D (halves of different size) work.
    """

    def __init__(self, input_dim: int, hidden: Sequence[int], keep_odd: bool) -> None:
        super().__init__()
        if input_dim < 2:
            raise ValueError(f"NICE needs at least 2 input columns, got {input_dim}")
        self.keep_odd = keep_odd
        n_even, n_odd = (input_dim + 1) // 2, input_dim // 2
        n_keep, n_update = (n_odd, n_even) if keep_odd else (n_even, n_odd)
        self.shift = mlp(n_keep, hidden, n_update)

    def couple(
        self, even: torch.Tensor, odd: torch.Tensor, sign: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (sign +1) or inverse (sign -1) on the halves: the kept half is unchanged,
        so m(kept) is recomputed exactly on the way back."""
        if self.keep_odd:
            return even + sign * self.shift(odd), odd
        return even, odd + sign * self.shift(even)


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
        even, odd = split_halves(x)
        for coupling in self.couplings:
            even, odd = coupling.couple(even, odd, 1.0)
        return merge_halves(even, odd) * torch.exp(self.log_scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., D] -> x [..., D], the exact inverse of ``encode``."""
        even, odd = split_halves(z * torch.exp(-self.log_scale))
        for coupling in reversed(self.couplings):
            even, odd = coupling.couple(even, odd, -1.0)
        return merge_halves(even, odd)

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
