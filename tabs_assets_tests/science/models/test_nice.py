"""tabs_assets.science.models.nice: NICE algebra by hand (SCIENCE.md §2)."""

import math

import pytest
import torch

from tabs_assets.science.models.nice import Nice


def _zero_couplings(flow: Nice) -> None:
    """Make every m(.) output exactly 0, so z = x * exp(s)."""
    for coupling in flow.couplings:
        last = coupling.shift[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_nice_round_trip(dim: int) -> None:
    torch.manual_seed(0)
    flow = Nice(dim, coupling_layers=4, hidden=[16, 16])
    with torch.no_grad():
        flow.log_scale.normal_(0.0, 0.5)
    x = torch.randn(64, dim)
    assert torch.allclose(flow.decode(flow.encode(x)), x, atol=1e-5)
    paths = torch.randn(7, 11, dim)  # [S, B, D]
    z = flow.encode(paths)
    assert z.shape == (7, 11, dim)
    assert torch.allclose(flow.decode(z), paths, atol=1e-5)
    assert torch.allclose(z[3], flow.encode(paths[3]), atol=1e-6)
    assert flow.latent_dim == dim
    assert flow.log_prob(paths).shape == (7, 11)


def test_nice_masks_alternate_odd_then_even() -> None:
    """Layer 0 ("odd") keeps odd columns and shifts even ones; layer 1 does the reverse."""
    flow = Nice(5, coupling_layers=2, hidden=[4])
    _zero_couplings(flow)
    with torch.no_grad():
        flow.couplings[0].shift[-1].bias.fill_(1.0)  # m(x_odd) = 1 for the 3 even columns
    x = torch.zeros(1, 5)
    assert flow.encode(x).tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0]]
    _zero_couplings(flow)
    with torch.no_grad():
        flow.couplings[1].shift[-1].bias.fill_(2.0)  # m(x_even) = 2 for the 2 odd columns
    assert flow.encode(x).tolist() == [[0.0, 2.0, 0.0, 2.0, 0.0]]


def test_nice_gaussian_nll_by_hand() -> None:
    flow = Nice(2)
    _zero_couplings(flow)
    with torch.no_grad():
        flow.log_scale.copy_(torch.tensor([math.log(2.0), 0.0]))
    x = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    z = flow.encode(x)
    assert torch.allclose(z, torch.tensor([[2.0, 1.0], [0.0, -3.0]]))
    assert flow.log_det_jacobian().item() == pytest.approx(math.log(2.0))
    # NLL = ½‖z‖² + (D/2)·log 2π − Σ s per row; the loss is the batch mean.
    per_row = [0.5 * 5.0 + math.log(2 * math.pi) - math.log(2.0)]
    per_row.append(0.5 * 9.0 + math.log(2 * math.pi) - math.log(2.0))
    assert (-flow.log_prob(x)).tolist() == pytest.approx(per_row, rel=1e-6)
    assert flow.nll(x).item() == pytest.approx(sum(per_row) / 2, rel=1e-6)


def test_nice_logistic_prior_by_hand() -> None:
    flow = Nice(3, prior="logistic")
    _zero_couplings(flow)
    with torch.no_grad():
        flow.log_scale.copy_(torch.tensor([0.0, 0.0, math.log(0.5)]))
    x = torch.tensor([[0.0, 1.0, 4.0]])  # z = [0, 1, 2]
    # log p(z) = −Σ (softplus(z) + softplus(−z)); log p(x) = log p(z) + Σ s
    expected = -(2 * math.log(2.0))
    expected -= math.log1p(math.e) + math.log1p(math.exp(-1.0))
    expected -= math.log1p(math.exp(2.0)) + math.log1p(math.exp(-2.0))
    expected += math.log(0.5)
    assert flow.log_prob(x)[0].item() == pytest.approx(expected, rel=1e-6)
    assert flow.nll(x).item() == pytest.approx(-expected, rel=1e-6)
