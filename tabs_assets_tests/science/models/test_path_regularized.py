"""tabs_assets.science.models.path_regularized (SCIENCE.md §5): frozen classifier, path losses."""

import math
from collections.abc import Iterator

import pytest
import torch

from tabs_assets.config.explainers import LatentShiftConfig, ReviseConfig, WachterConfig
from tabs_assets.config.models import NiceConfig, PathRegularizationConfig, TrainingConfig
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.data import split_tensors
from tabs_assets.science.models.nice import Nice
from tabs_assets.science.models.path_regularized import (
    PathRegularizedFlowModule,
    boundary_cross_loss,
    max_point_loss,
    train_path_regularized_nice,
    training_max_point,
)
from tabs_assets.science.models.training import fit_module

TINY = TrainingConfig(max_epochs=2, patience=100, accelerator="cpu")
SHORT_PATHS = LatentShiftConfig(step_size=0.05, n_steps=9)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a loaded machine every parallel region
    of the per-batch explainer waits for a busy core (seconds instead of a fraction of one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def classifier_with_state() -> MLPClassifier:
    """Dropout and BatchNorm make any train-mode use or update visible in the state."""
    torch.manual_seed(0)
    classifier = MLPClassifier(2, 3, hidden=[16], dropout=0.2, batch_norm=True)
    classifier.train()
    with torch.no_grad():
        classifier(torch.randn(256, 2) * 2)  # non-trivial BatchNorm running statistics
    return classifier.eval()


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def identical(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    current = module.state_dict()
    return current.keys() == state.keys() and all(torch.equal(current[k], state[k]) for k in state)


def make_module(data: PreparedDataset, classifier, config: PathRegularizationConfig):
    torch.manual_seed(1)
    return PathRegularizedFlowModule(
        Nice(2, hidden=[8, 8]), 1e-2, classifier, training_max_point(data), config, seed=3
    )


def test_boundary_cross_loss_by_hand() -> None:
    probabilities = torch.tensor(
        [
            [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]],
            [[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]],
        ]
    )  # [S=2, B=2, C=3]
    sources, targets = torch.tensor([0, 1]), torch.tensor([1, 2])
    loss = boundary_cross_loss(probabilities.log(), sources, targets)
    # max(p_s, p_t): path 0: 0.7, 0.3; path 1: 0.6, 0.4.
    assert loss.item() == pytest.approx(-(0.7 + 0.3 + 0.6 + 0.4) / 4)


def test_max_point_loss_by_hand() -> None:
    points = torch.tensor(
        [
            [[0.0, 0.0], [3.0, 1.0]],
            [[1.0, 0.0], [2.0, 1.0]],
            [[1.0, 1.0], [-1.0, 1.0]],
        ]
    )  # [S=3, B=2, D=2]
    # Distances to (1, 1): path 0: sqrt 2, 1, 0 -> 0; path 1: 2, 1, 2 -> 1.
    assert max_point_loss(points, torch.tensor([1.0, 1.0])).item() == pytest.approx(0.5)


def test_x_max_is_the_training_feature_max(tiny_data: PreparedDataset) -> None:
    features, _ = split_tensors(tiny_data, "train")
    assert torch.equal(training_max_point(tiny_data), features.max(0).values)


def test_classifier_is_frozen_and_bit_identical_after_training(tiny_data) -> None:
    classifier = classifier_with_state()
    before = snapshot(classifier)
    config = PathRegularizationConfig(explainer=SHORT_PATHS, validity_weight=0.5)
    module = make_module(tiny_data, classifier, config)
    optimised = {
        id(p) for group in module.configure_optimizers().param_groups for p in group["params"]
    }
    assert not optimised & {id(p) for p in module.classifier.parameters()}
    assert not any(p.requires_grad for p in module.classifier.parameters())
    fit_module(module, tiny_data, TINY)
    # Neither the module's frozen copy (weights and BatchNorm statistics) nor the caller's
    # classifier changed, and the caller's module keeps its own flags.
    assert identical(module.classifier, before)
    assert identical(classifier, before)
    assert all(p.requires_grad for p in classifier.parameters())
    assert not module.classifier.training


def test_tiny_training_lowers_the_path_loss(tiny_data: PreparedDataset) -> None:
    config = PathRegularizationConfig(
        path_loss="max_point", path_weight=10.0, explainer=SHORT_PATHS
    )
    module = make_module(tiny_data, classifier_with_state(), config)
    features, _ = split_tensors(tiny_data, "train")

    def path_loss() -> float:
        generator = torch.Generator().manual_seed(0)
        return float(module.path_terms(features, generator)["path_loss"].detach())

    before = path_loss()
    history = fit_module(module, tiny_data, TINY).history
    after = path_loss()
    assert after < before
    assert all(math.isfinite(row["val_path_loss"]) for row in history)
    assert {"val_loss", "val_nll", "val_path_loss", "val_validity_loss"} <= history[-1].keys()


def test_train_path_regularized_nice(tiny_data: PreparedDataset) -> None:
    classifier = classifier_with_state()
    before = snapshot(classifier)
    config = NiceConfig(
        hidden=[8, 8],
        path_regularization=PathRegularizationConfig(explainer=SHORT_PATHS),
        training=TINY,
    )
    epochs: list[dict[str, float]] = []
    trained = train_path_regularized_nice(tiny_data, config, classifier, epochs.append)
    assert trained.kind == "nice" and len(trained.history) == 2 and len(epochs) == 2
    assert trained.test_metrics["round_trip_error"] < 1e-4
    assert isinstance(trained.build(), Nice)
    assert identical(classifier, before)
    with pytest.raises(ValueError, match="path_regularization"):
        train_path_regularized_nice(tiny_data, NiceConfig(training=TINY), classifier)


def test_kept_latent_graph_changes_the_gradient(tiny_data: PreparedDataset) -> None:
    features, _ = split_tensors(tiny_data, "train")
    gradients = []
    for detach in (True, False):
        explainer = ReviseConfig(step_size=0.05, n_steps=3)
        config = PathRegularizationConfig(explainer=explainer, detach_latents=detach)
        module = make_module(tiny_data, classifier_with_state(), config)
        terms = module.path_terms(features[:64], torch.Generator().manual_seed(0))
        module.model.zero_grad()
        terms["path_loss"].backward()
        gradients.append(torch.cat([p.grad.flatten() for p in module.model.parameters()]))
    assert not torch.allclose(gradients[0], gradients[1])


def test_wachter_cannot_regularize_the_flow(tiny_data: PreparedDataset) -> None:
    config = PathRegularizationConfig(explainer=WachterConfig())
    with pytest.raises(ValueError, match="wachter"):
        make_module(tiny_data, classifier_with_state(), config)


def test_validation_is_exact_over_chunks_and_works_in_inference_mode(
    tiny_data: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabs_assets.science.models import path_regularized

    monkeypatch.setattr(path_regularized, "VALIDATION_CHUNK_ROWS", 7)
    config = PathRegularizationConfig(explainer=SHORT_PATHS, validity_weight=0.3)
    module = make_module(tiny_data, classifier_with_state(), config)
    features, _ = split_tensors(tiny_data, "val")
    rows = features[:64]
    module.on_validation_epoch_start()
    with torch.inference_mode():
        chunked = module.validation_metrics((rows,))
    whole = module.path_terms(rows, torch.Generator().manual_seed(module.seed + 1))
    for name, value in whole.items():
        assert torch.allclose(chunked[name], value.detach(), atol=1e-5), name
