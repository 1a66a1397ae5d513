"""tabs_assets.science.models.training: seeding, best weights, early stopping, test metrics."""

import math
import time

import numpy as np
import pytest
import torch

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.config.models import (
    AutoencoderConfig,
    ClassifierConfig,
    NiceConfig,
    PathRegularizationConfig,
    TrainingConfig,
    VaeConfig,
)
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.training import (
    fit_module,
    train_classifier,
    train_generative_model,
)
from tabs_assets.science.models.training_modules import ClassifierModule
from tabs_assets_tests.science.models.conftest import prepared, states_equal

TINY = TrainingConfig(max_epochs=3, patience=100)


def test_same_seed_gives_bit_identical_weights(tiny_data: PreparedDataset) -> None:
    config = ClassifierConfig(training=TINY)
    first = train_classifier(tiny_data, config)
    second = train_classifier(tiny_data, config)
    assert states_equal(first.state_dict, second.state_dict)
    assert first.history == second.history
    other = train_classifier(
        tiny_data, ClassifierConfig(training=TINY.model_copy(update={"seed": 1}))
    )
    assert not states_equal(first.state_dict, other.state_dict)


def test_max_epochs_is_respected(tiny_data: PreparedDataset) -> None:
    rows: list[dict[str, float]] = []
    config = ClassifierConfig(training=TrainingConfig(max_epochs=2, patience=100))
    trained = train_classifier(tiny_data, config, on_epoch_end=rows.append)
    assert [row["epoch"] for row in trained.history] == [0, 1]
    assert rows == trained.history
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy"}


class _ScriptedValidation(ClassifierModule):
    """A classifier whose validation loss follows a script; it snapshots its weights per epoch."""

    def __init__(self, script: list[float]) -> None:
        super().__init__(MLPClassifier(2, 3, [8]), learning_rate=1e-2)
        self.script = script
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def on_validation_epoch_start(self) -> None:
        self.snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})

    def validation_metrics(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        return {"loss": torch.tensor(self.script[len(self.snapshots) - 1])}


def test_best_validation_weights_are_kept(tiny_data: PreparedDataset) -> None:
    module = _ScriptedValidation([1.0, 0.8, 0.5, 0.7, 0.9, 1.1])
    result = fit_module(module, tiny_data, TrainingConfig(max_epochs=6, patience=100))
    assert len(result.history) == 6
    assert result.best_epoch == 2
    assert states_equal(result.state_dict, module.snapshots[2])
    assert not states_equal(result.state_dict, module.snapshots[-1])
    assert states_equal(module.model.state_dict(), module.snapshots[2])


def test_early_stopping_uses_patience(tiny_data: PreparedDataset) -> None:
    module = _ScriptedValidation([1.0, 0.8, 0.5, 0.7, 0.9, 1.1, 1.2, 1.3])
    result = fit_module(module, tiny_data, TrainingConfig(max_epochs=8, patience=2))
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3, 4]
    assert result.best_epoch == 2


def test_a_non_finite_validation_loss_stops_training(tiny_data: PreparedDataset) -> None:
    module = _ScriptedValidation([1.0, 0.5, math.nan, 0.1, 0.1])
    result = fit_module(module, tiny_data, TrainingConfig(max_epochs=5, patience=100))
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert result.best_epoch == 1


def test_training_leaves_the_process_determinism_settings_as_they_were(
    tiny_data: PreparedDataset,
) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    fit_module(_ScriptedValidation([1.0]), tiny_data, TrainingConfig(max_epochs=1))
    assert not torch.are_deterministic_algorithms_enabled()


def test_train_classifier_reports_test_metrics_and_best_epoch(
    tiny_data: PreparedDataset, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trained = train_classifier(tiny_data, ClassifierConfig(training=TINY))
    assert list(tmp_path.iterdir()) == []  # no checkpoints or logs in the working dir
    losses = [row["val_loss"] for row in trained.history]
    assert trained.best_epoch == int(np.argmin(losses))
    metrics = trained.test_metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.shape == (3, 3)
    assert matrix.sum(axis=1).tolist() == tiny_data.class_counts("test")
    assert trained.spec["input_dim"] == 2 and trained.spec["n_classes"] == 3
    assert trained.spec["batch_size"] == math.ceil(len(tiny_data.split_indices["train"]) / 20)


@pytest.mark.parametrize("config", [NiceConfig(training=TINY), NiceConfig(prior="logistic")])
def test_train_nice(tiny_data: PreparedDataset, config: NiceConfig) -> None:
    config = config.model_copy(update={"training": TINY})
    trained = train_generative_model(tiny_data, config)
    assert trained.kind == "nice"
    assert trained.test_metrics["round_trip_error"] < 1e-4
    assert math.isfinite(trained.test_metrics["nll"])
    assert len(trained.history) == 3


@pytest.mark.parametrize("config", [AutoencoderConfig(training=TINY), VaeConfig(training=TINY)])
def test_train_autoencoders(tiny_data: PreparedDataset, config) -> None:
    trained = train_generative_model(tiny_data, config)
    assert trained.kind == config.kind
    # The reported MSE is the stored (eval mode) model's reconstruction error on the test split.
    features = torch.as_tensor(tiny_data.split_arrays("test")[0])
    with torch.no_grad():
        reconstruction = trained.build()(features)
    mse = float((reconstruction - features).pow(2).mean())
    assert trained.test_metrics["mse"] == pytest.approx(mse, rel=1e-5)
    assert trained.build().latent_dim == config.latent_dim


def test_path_regularization_is_left_to_its_module(tiny_data: PreparedDataset) -> None:
    config = NiceConfig(path_regularization=PathRegularizationConfig(), training=TINY)
    with pytest.raises(NotImplementedError, match="path_regularized"):
        train_generative_model(tiny_data, config)


# --- Slow -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_classifier_reaches_98_percent() -> None:
    data = prepared(CakeOnSeaConfig())
    start = time.perf_counter()
    trained = train_classifier(data, ClassifierConfig())
    seconds = time.perf_counter() - start
    print(
        f"default classifier: {len(trained.history)} epochs (best {trained.best_epoch}), "
        f"{seconds:.1f} s, test {trained.test_metrics}"
    )
    assert trained.test_metrics["accuracy"] >= 0.98
