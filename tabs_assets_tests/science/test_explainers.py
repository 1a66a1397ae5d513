"""tabs_assets.science.explainers (SCIENCE.md §4): hand-computed paths, batched == row by row."""

import copy

import pytest
import torch
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    ExplainerConfig,
    LatentShiftConfig,
    ReviseConfig,
    ThresholdSearchConfig,
    WachterConfig,
)
from tabs_assets.config.losses import GeneralValidityLoss, TargetCrossEntropyLoss
from tabs_assets.science.explainers.explain import explain, path_latents
from tabs_assets.science.explainers.paths import CounterfactualPaths, draw_targets
from tabs_assets.science.losses import validity_loss
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.nice import Nice

CPU = torch.device("cpu")
LOSS = GeneralValidityLoss()  # -f_t + f_s


def linear_classifier(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias or [0.0] * len(weight)))
    return layer


class LinearCodec(nn.Module):
    """decode(z) = z M^T + c, encode = its inverse."""

    def __init__(self, matrix: Tensor, offset: Tensor) -> None:
        super().__init__()
        self.matrix = nn.Parameter(matrix.clone())
        self.offset = nn.Parameter(offset.clone())

    def encode(self, x: Tensor) -> Tensor:
        return (x - self.offset) @ torch.linalg.inv(self.matrix).T

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.matrix.T + self.offset


class WarpedCodec(nn.Module):
    """A nonlinear codec with a latent width H = 3 different from D = 2."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.encoder = nn.Parameter(torch.randn(3, 2, generator=generator))
        self.decoder = nn.Parameter(torch.randn(2, 3, generator=generator))

    def encode(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.encoder.T) + 0.1 * (x @ self.encoder.T)

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.decoder.T + 0.3 * torch.sin(z @ self.decoder.T)


def small_mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))


def random_rows(n: int, seed: int = 0) -> Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# Row-by-row references of the same math (tests only): one row, one step at a time.


def _distance(difference: Tensor, config) -> Tensor:
    """The distance term written out: pseudo-Huber sqrt(d^2 + s^2) - s, or plain |d|."""
    if config is None or not config.distance_weight:
        return difference.new_zeros(())
    if config.distance == "l1_subgradient":
        return config.distance_weight * difference.abs().sum()
    s = config.distance_scale
    return config.distance_weight * ((difference**2 + s**2).sqrt() - s).sum()


def _row_gradient(z, x, source, target, classifier, codec, loss, current, config=None):
    z = z.detach().requires_grad_(True)
    point = codec.decode(z)
    logits = classifier(point)
    source = logits.argmax(-1) if current else source
    value = validity_loss(logits, source, target, loss) + _distance(point - x, config)
    return torch.autograd.grad(value.sum(), z)[0]


def reference_latent_shift(x, target, classifier, codec, config: LatentShiftConfig, loss) -> Tensor:
    source = classifier(x[None]).argmax(-1)
    z0 = codec.encode(x[None]).detach()
    g = _row_gradient(z0, x, source, target[None], classifier, codec, loss, False)
    steps = [codec.decode(z0 - i * config.step_size * g) for i in range(config.n_steps + 1)]
    return torch.cat(steps).detach()


def reference_sgd(x, target, classifier, codec, config: ReviseConfig | WachterConfig, loss):
    source = classifier(x[None]).argmax(-1)
    z = codec.encode(x[None]).detach()
    points = [codec.decode(z)]
    for step in range(config.n_steps):
        if step % config.gradient_every == 0:
            g = _row_gradient(
                z,
                x,
                source,
                target[None],
                classifier,
                codec,
                loss,
                config.source == "current",
                config,
            )
        z = z - config.step_size * g
        points.append(codec.decode(z))
    return torch.cat(points).detach()


# --------------------------------------------------------------------------------------------
# Targets


def test_draw_targets_never_the_source_and_reproducible() -> None:
    sources = torch.randint(0, 4, (500,), generator=torch.Generator().manual_seed(0))
    targets = draw_targets(sources, 4, seed=7)
    assert not (targets == sources).any()
    assert targets.min() >= 0 and targets.max() < 4
    assert torch.equal(targets, draw_targets(sources, 4, seed=7))
    assert not torch.equal(targets, draw_targets(sources, 4, seed=8))
    # All C - 1 offsets occur.
    assert set(((targets - sources) % 4).tolist()) == {1, 2, 3}


def test_two_methods_with_the_same_seed_get_the_same_pairs() -> None:
    classifier = small_mlp()
    inputs = random_rows(20)
    sources = classifier(inputs).argmax(-1)
    codec = WarpedCodec()
    shift = explain(
        inputs, draw_targets(sources, 3, 5), classifier, codec, LatentShiftConfig(n_steps=3), LOSS
    )
    revise = explain(
        inputs, draw_targets(sources, 3, 5), classifier, codec, ReviseConfig(n_steps=3), LOSS
    )
    assert torch.equal(shift.inputs, revise.inputs)
    assert torch.equal(shift.targets, revise.targets)
    assert torch.equal(shift.sources, revise.sources)
    assert torch.equal(shift.sources, sources)


# --------------------------------------------------------------------------------------------
# Latent Shift


def test_latent_shift_points_are_z0_minus_i_eta_g() -> None:
    weight = [[1.0, -2.0], [0.5, 3.0], [-1.0, 0.0]]
    classifier = linear_classifier(weight, [0.1, 0.0, -0.2])
    matrix = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    codec = LinearCodec(matrix, torch.tensor([0.5, -1.0]))
    inputs = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-2.0, 0.5]])
    targets = torch.tensor([1, 2, 0])
    config = LatentShiftConfig(step_size=0.05, n_steps=10)
    paths = explain(inputs, targets, classifier, codec, config, LOSS, device=CPU)

    w = torch.tensor(weight)
    sources = classifier(inputs).argmax(-1)
    # L = (W_s - W_t) . (M z + c) + const  =>  g = M^T (W_s - W_t), the same at every z.
    g = (w[sources] - w[targets]) @ matrix
    z0 = codec.encode(inputs).detach()
    assert torch.equal(paths.sources, sources)
    assert paths.latents is not None and paths.latents.shape == (11, 3, 2)
    for i in range(11):
        expected = z0 - (i * config.step_size) * g
        assert torch.allclose(paths.latents[i], expected, rtol=0, atol=1e-6), i
    assert torch.equal(paths.latents[0], z0)
    assert torch.allclose(paths.points, codec.decode(paths.latents).detach(), atol=1e-6)
    assert torch.allclose(paths.points[0], inputs, atol=1e-6)


def test_normalized_gradient_has_unit_steps() -> None:
    classifier = linear_classifier([[3.0, 4.0], [0.0, 0.0]])
    codec = LinearCodec(torch.eye(2), torch.zeros(2))
    config = LatentShiftConfig(step_size=0.1, n_steps=4, normalize_gradient=True)
    paths = explain(torch.tensor([[1.0, 1.0]]), torch.tensor([1]), classifier, codec, config, LOSS)
    # g = W_0 - W_1 = (3, 4), |g| = 5: each step moves 0.1 along -(0.6, 0.8).
    steps = paths.latents[1:] - paths.latents[:-1]
    assert torch.allclose(steps, torch.tensor([-0.06, -0.08]).expand(4, 1, 2), atol=1e-6)


def test_threshold_search_spreads_frames_up_to_the_first_crossing() -> None:
    # f = (0, x0): p_1 = sigmoid(x0). g = grad(-x0 + 0) = (-1, 0), so x0 grows by lambda.
    classifier = linear_classifier([[0.0, 0.0], [1.0, 0.0]])
    codec = LinearCodec(torch.eye(2), torch.zeros(2))
    search = ThresholdSearchConfig(threshold=0.5, max_shift=100.0, growth=1.5)
    config = LatentShiftConfig(step_size=0.01, n_steps=8, threshold_search=search)
    inputs = torch.tensor([[-1.0, 0.0], [-500.0, 0.0]])
    paths = explain(inputs, torch.tensor([1, 1]), classifier, codec, config, LOSS)
    # Row 0 needs lambda >= 1: the tries are 0.01 * 1.5^k, the first >= 1 is k = 12.
    # Row 1 needs 500 > max_shift: it gets max_shift.
    largest = torch.tensor([0.01 * 1.5**12, 100.0])
    fractions = torch.linspace(0, 1, 9)[:, None]
    expected_x0 = inputs[:, 0] + fractions * largest
    assert torch.allclose(paths.points[..., 0], expected_x0, atol=1e-4)
    assert torch.equal(paths.points[..., 1], torch.zeros(9, 2))
    assert paths.predictions[-1, 0] == 1 and paths.predictions[-1, 1] == 0


# --------------------------------------------------------------------------------------------
# Batched == row by row; exact lengths


CONFIGS: list[ExplainerConfig] = [
    LatentShiftConfig(step_size=0.1, n_steps=6),
    LatentShiftConfig(step_size=0.1, n_steps=6, normalize_gradient=True),
    LatentShiftConfig(step_size=0.1, n_steps=6, threshold_search=ThresholdSearchConfig()),
    ReviseConfig(step_size=0.1, n_steps=6),
    ReviseConfig(step_size=0.1, n_steps=6, distance_weight=0.5, gradient_every=2),
    ReviseConfig(step_size=0.1, n_steps=6, optimizer="adam"),
    ReviseConfig(step_size=0.1, n_steps=6, source="current"),
    WachterConfig(step_size=0.1, n_steps=6, distance_weight=0.2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c))
def test_batched_equals_row_by_row(config: ExplainerConfig) -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    inputs = random_rows(7)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    whole = explain(inputs, targets, classifier, codec, config, TargetCrossEntropyLoss())
    chunked = explain(inputs, targets, classifier, codec, config, TargetCrossEntropyLoss(), 3)
    assert whole.points.shape == (7, 7, 2)
    assert torch.allclose(whole.points, chunked.points, atol=1e-6)
    for row in range(7):
        alone = explain(
            inputs[row : row + 1],
            targets[row : row + 1],
            classifier,
            codec,
            config,
            TargetCrossEntropyLoss(),
        )
        assert torch.allclose(alone.points[:, 0], whole.points[:, row], atol=1e-5), row
        assert torch.equal(alone.predictions[:, 0], whole.predictions[:, row])


@pytest.mark.parametrize(
    "config",
    [
        ReviseConfig(step_size=0.1, n_steps=5, distance_weight=0.5, gradient_every=2),
        ReviseConfig(step_size=0.1, n_steps=5, distance_weight=0.5, distance="l1_subgradient"),
        ReviseConfig(step_size=0.1, n_steps=5, source="current"),
        WachterConfig(step_size=0.1, n_steps=5, distance_weight=0.3, distance_scale=0.2),
    ],
    ids=lambda c: repr(c),
)
def test_descent_matches_the_row_by_row_reference(config) -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    if isinstance(config, WachterConfig):
        reference_codec = LinearCodec(torch.eye(2), torch.zeros(2))
    else:
        reference_codec = codec
    inputs = random_rows(5, seed=2)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=1)
    paths = explain(inputs, targets, classifier, codec, config, LOSS)
    for row in range(5):
        expected = reference_sgd(
            inputs[row], targets[row], classifier, reference_codec, config, LOSS
        )
        assert torch.allclose(paths.points[:, row], expected, atol=1e-5), row


def test_latent_shift_matches_the_row_by_row_reference() -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    config = LatentShiftConfig(step_size=0.2, n_steps=9)
    inputs = random_rows(6, seed=4)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=2)
    paths = explain(inputs, targets, classifier, codec, config, LOSS, chunk_size=4)
    for row in range(6):
        expected = reference_latent_shift(
            inputs[row], targets[row], classifier, codec, config, LOSS
        )
        assert torch.allclose(paths.points[:, row], expected, atol=1e-5), row


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c))
def test_every_path_has_n_steps_plus_one_points(config: ExplainerConfig) -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    inputs = random_rows(10)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    paths = explain(inputs, targets, classifier, codec, config, LOSS, chunk_size=4)
    assert paths.n_steps == config.n_steps
    assert paths.points.shape == (config.n_steps + 1, 10, 2)
    assert paths.logits.shape == (config.n_steps + 1, 10, 3)
    assert paths.predictions.shape == (config.n_steps + 1, 10)
    if isinstance(config, WachterConfig):
        assert paths.latents is None
    else:
        assert paths.latents.shape == (config.n_steps + 1, 10, 3)
    assert paths.method == config.method and paths.seconds > 0


def test_empty_input_gives_empty_paths() -> None:
    paths = explain(
        torch.zeros(0, 2),
        torch.zeros(0, dtype=torch.long),
        small_mlp(),
        WarpedCodec(),
        ReviseConfig(n_steps=3),
        LOSS,
    )
    assert paths.points.shape == (4, 0, 2)


def test_targets_out_of_range_are_rejected_and_progress_is_reported() -> None:
    inputs = random_rows(5)
    config = LatentShiftConfig(n_steps=2)
    with pytest.raises(ValueError, match=r"targets must lie in 0\.\.2"):
        explain(inputs, torch.full((5,), 3), small_mlp(), WarpedCodec(), config, LOSS)
    seen: list[tuple[int, int]] = []
    explain(
        inputs,
        torch.zeros(5, dtype=torch.long),
        small_mlp(),
        WarpedCodec(),
        config,
        LOSS,
        chunk_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(2, 5), (4, 5), (5, 5)]


# --------------------------------------------------------------------------------------------
# REVISE, Wachter, source modes


def test_wachter_descends_in_input_space() -> None:
    weight = [[1.0, 2.0], [-1.0, 0.5]]
    classifier = linear_classifier(weight)
    inputs = torch.tensor([[1.0, 1.0]])  # f = (3, -0.5): source 0
    config = WachterConfig(step_size=0.1, n_steps=3)
    paths = explain(inputs, torch.tensor([1]), classifier, None, config, LOSS)
    # grad_x(-f_1 + f_0) = W_0 - W_1 = (2, 1.5) at every x.
    expected = inputs - torch.arange(4.0)[:, None, None] * 0.1 * torch.tensor([2.0, 1.5])
    assert paths.latents is None
    assert torch.allclose(paths.points, expected, atol=1e-6)


def test_revise_distance_term_is_applied() -> None:
    weight = [[1.0, 2.0], [-1.0, 0.5]]
    classifier = linear_classifier(weight)
    codec = LinearCodec(torch.eye(2), torch.zeros(2))
    inputs = torch.tensor([[1.0, 1.0]])
    target = torch.tensor([1])
    plain = explain(inputs, target, classifier, codec, ReviseConfig(step_size=0.1, n_steps=3), LOSS)
    zero = ReviseConfig(step_size=0.1, n_steps=3, distance_weight=0.0)
    assert torch.equal(explain(inputs, target, classifier, codec, zero, LOSS).points, plain.points)
    weighted = ReviseConfig(
        step_size=0.1, n_steps=3, distance_weight=0.5, distance="l1_subgradient"
    )
    paths = explain(inputs, target, classifier, codec, weighted, LOSS)
    # Step 1: |Dec(z0) - x| = 0 has zero subgradient; afterwards Dec(z) - x = -(0.2, 0.15) * k,
    # so the L1 term adds 0.5 * sign(...) = (-0.5, -0.5) to g = (2, 1.5): steps of (0.15, 0.1).
    g, pull = torch.tensor([2.0, 1.5]), torch.tensor([-0.5, -0.5])
    expected = [inputs[0]]
    expected.append(expected[-1] - 0.1 * g)
    expected.append(expected[-1] - 0.1 * (g + pull))
    expected.append(expected[-1] - 0.1 * (g + pull))
    assert torch.allclose(paths.points[:, 0], torch.stack(expected), atol=1e-6)
    assert not torch.allclose(paths.points, plain.points)


def test_smooth_l1_distance_by_hand() -> None:
    """Identity codec, linear classifier: the pull is d / sqrt(d^2 + s^2) per coordinate."""
    classifier = linear_classifier([[1.0, 2.0], [-1.0, 0.5]])
    codec = LinearCodec(torch.eye(2), torch.zeros(2))
    inputs, target = torch.tensor([[1.0, 1.0]]), torch.tensor([1])
    config = ReviseConfig(step_size=0.1, n_steps=2, distance_weight=0.5, distance_scale=0.03)
    paths = explain(inputs, target, classifier, codec, config, LOSS)
    g = torch.tensor([2.0, 1.5])  # grad of -f_1 + f_0
    first = inputs[0] - 0.1 * g  # d = 0: the smooth term has gradient 0
    d = torch.tensor([-0.2, -0.15])
    pull = 0.5 * torch.tensor([-0.2 / (0.04 + 0.0009) ** 0.5, -0.15 / (0.0225 + 0.0009) ** 0.5])
    second = first - 0.1 * (g + pull)
    assert torch.allclose(first - inputs[0], d)
    assert torch.allclose(paths.points[:, 0], torch.stack([inputs[0], first, second]), atol=1e-6)
    assert torch.allclose(pull, torch.tensor([-0.494471, -0.490290]), atol=1e-6)


def _trained_cake_models() -> tuple[Tensor, nn.Module, Nice]:
    """A classifier and a NICE briefly trained on cake on sea (99 % accuracy), 200 test rows."""
    from tabs_assets.config.datasets import CakeOnSeaConfig
    from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea

    torch.manual_seed(0)
    data = make_cake_on_sea(CakeOnSeaConfig(seed=42, n_points=20_000, n_dims=2))
    x, y = torch.as_tensor(data.features), torch.as_tensor(data.labels).long()
    x = (x - x.mean(0)) / x.std(0)
    classifier, flow = MLPClassifier(2, 3), Nice(2)
    optimizer = torch.optim.Adam([*classifier.parameters(), *flow.parameters()], lr=3e-3)
    for _ in range(600):
        rows = torch.randint(0, len(x), (512,))
        loss = nn.functional.cross_entropy(classifier(x[rows]), y[rows]) + flow.nll(x[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    return x[order[:200]], classifier.eval(), flow.eval()


def _revise_points(config: ReviseConfig, inputs, targets, classifier, flow, dtype) -> Tensor:
    classifier, flow = copy.deepcopy(classifier).to(dtype), copy.deepcopy(flow).to(dtype)
    inputs = inputs.to(dtype)
    sources = classifier(inputs).argmax(-1)
    latents = path_latents(inputs, sources, targets, classifier, flow, config, LOSS)
    with torch.no_grad():
        return flow.decode(latents).double()


def test_revise_paths_are_stable_under_rounding_of_the_input() -> None:
    """Issue #10: 1e-7 relative input noise or float64 moves smooth-L1 REVISE paths < 1e-3."""
    inputs, classifier, flow = _trained_cake_models()
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    noise = 1 + 1e-7 * torch.randn(inputs.shape, generator=torch.Generator().manual_seed(5))
    moved = {}
    for distance in ("smooth_l1", "l1_subgradient"):
        config = ReviseConfig(distance_weight=0.5, n_steps=99, distance=distance)
        base = _revise_points(config, inputs, targets, classifier, flow, torch.float32)
        perturbed = _revise_points(config, inputs * noise, targets, classifier, flow, torch.float32)
        double = _revise_points(config, inputs, targets, classifier, flow, torch.float64)
        moved[distance] = (
            (base - perturbed).abs().max().item(),
            (base - double).abs().max().item(),
        )
    assert moved["smooth_l1"][0] <= 1e-3 and moved["smooth_l1"][1] <= 1e-3, moved
    assert min(moved["l1_subgradient"]) > 0.1, moved  # the subgradient is chaotic


def test_revise_with_adam_runs_and_matches_the_functional_update() -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    inputs = random_rows(6)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    config = ReviseConfig(step_size=0.1, n_steps=8, optimizer="adam", gradient_every=3)
    paths = explain(inputs, targets, classifier, codec, config, LOSS)
    assert paths.points.shape == (9, 6, 2) and torch.isfinite(paths.points).all()
    # Adam's first step moves every coordinate by lr (m_hat / sqrt(v_hat) = sign(g)).
    first = (paths.latents[1] - paths.latents[0]).abs()
    assert torch.allclose(first, torch.full_like(first, 0.1), atol=1e-5)
    # The out-of-place update used for differentiable latents equals torch.optim.Adam.
    sources = classifier(inputs).argmax(-1)
    graph = path_latents(inputs, sources, targets, classifier, codec, config, LOSS, True)
    assert torch.allclose(graph.detach(), paths.latents, atol=1e-5)


def test_source_current_differs_from_initial() -> None:
    # f = (0, x0); source 0, target 1; grad(-f_1 + f_s) = (-1, 0) while the source is 0.
    classifier = linear_classifier([[0.0, 0.0], [1.0, 0.0]])
    inputs, target = torch.tensor([[-1.0, 0.0]]), torch.tensor([1])
    initial = WachterConfig(step_size=0.3, n_steps=6)
    current = WachterConfig(step_size=0.3, n_steps=6, source="current")
    keeps_going = explain(inputs, target, classifier, None, initial, LOSS)
    stops = explain(inputs, target, classifier, None, current, LOSS)
    # With `current` the source becomes the target at x0 = 0.2: the loss -f_t + f_t is flat.
    x0 = torch.tensor([-1.0, -0.7, -0.4, -0.1, 0.2, 0.2, 0.2])
    assert torch.allclose(stops.points[:, 0, 0], x0, atol=1e-6)
    assert torch.allclose(keeps_going.points[:, 0, 0], -1.0 + 0.3 * torch.arange(7.0), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Models and storage


def test_models_are_used_in_eval_mode_and_left_untouched() -> None:
    torch.manual_seed(0)
    classifier = MLPClassifier(2, 3, hidden=[16], dropout=0.5, batch_norm=True)
    classifier(torch.randn(64, 2))  # give BatchNorm non-trivial running statistics
    flow = Nice(2, hidden=[8])
    classifier.train()
    flow.train()
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    inputs = random_rows(9)
    with torch.no_grad():
        targets = draw_targets(classifier.eval()(inputs).argmax(-1), 3, seed=0)
    classifier.train()
    config = ReviseConfig(step_size=0.05, n_steps=4)
    batch = explain(inputs, targets, classifier, flow, config, LOSS, chunk_size=4)
    # Eval mode: dropout off and BatchNorm on running stats, so rows do not interact.
    alone = explain(inputs[:1], targets[:1], classifier, flow, config, LOSS)
    assert torch.allclose(alone.points[:, 0], batch.points[:, 0], atol=1e-5)
    assert classifier.training and flow.training
    assert all(p.grad is None for p in [*classifier.parameters(), *flow.parameters()])
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())


def test_differentiable_latents_reach_the_generative_parameters() -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    for p in classifier.parameters():
        p.requires_grad_(False)
    inputs = random_rows(4)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    sources = classifier(inputs).argmax(-1)
    config = LatentShiftConfig(step_size=0.1, n_steps=3)
    detached = path_latents(inputs, sources, targets, classifier, codec, config, LOSS)
    assert not detached.requires_grad
    latents = path_latents(inputs, sources, targets, classifier, codec, config, LOSS, True)
    latents.square().sum().backward()
    assert codec.encoder.grad is not None and codec.decoder.grad is not None
    assert codec.decoder.grad.abs().sum() > 0  # through g = grad_z L(f(Dec(z0)))


def test_paths_save_and_load(tmp_path) -> None:
    classifier, codec = small_mlp(), WarpedCodec()
    inputs = random_rows(5)
    targets = draw_targets(classifier(inputs).argmax(-1), 3, seed=0)
    for config in (LatentShiftConfig(n_steps=3), WachterConfig(n_steps=3)):
        paths = explain(inputs, targets, classifier, codec, config, LOSS)
        paths.save(tmp_path / config.method)
        loaded = CounterfactualPaths.load(tmp_path / config.method)
        assert loaded.method == paths.method and loaded.seconds == paths.seconds
        for name in ("inputs", "sources", "targets", "points", "logits", "predictions"):
            assert torch.equal(getattr(loaded, name), getattr(paths, name))
        assert (loaded.latents is None) == (paths.latents is None)


def test_what_a_method_can_do_is_data_on_its_config() -> None:
    """The pipeline reads capabilities from the configs; each method has a search."""
    import typing

    from tabs_assets.config.models import (
        AutoencoderConfig,
        NiceConfig,
        PathRegularizationConfig,
        ReferenceDensityConfig,
        VaeConfig,
    )
    from tabs_assets.science.explainers.explain import SEARCHES

    classes = typing.get_args(typing.get_args(ExplainerConfig)[0])
    assert {c.model_fields["method"].default for c in classes} == set(SEARCHES)
    capabilities = {
        c().method: (c.needs_generative_model, c.works_in_latent_space, c().label) for c in classes
    }
    assert capabilities == {
        "latent_shift": (True, True, "latent_shift"),
        "revise": (True, True, "revise"),
        "wachter": (False, False, "wachter"),
    }
    assert ReviseConfig(distance_weight=0.25).label == "revise+l1(0.25)"
    regularized = NiceConfig(path_regularization=PathRegularizationConfig(path_loss="max_point"))
    assert (regularized.path_regularized, regularized.label) == (True, "nice+max_point")
    for plain in (NiceConfig(), ReferenceDensityConfig(), AutoencoderConfig(), VaeConfig()):
        assert not plain.path_regularized and plain.label == plain.kind
