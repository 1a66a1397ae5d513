"""Models and training (SCIENCE.md §2): NICE algebra, shapes, seeding, best weights, storage."""

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
    resolve_batch_size,
)
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.prepared import PreparedDataset, prepare_dataset
from tabs_assets.science.models.autoencoders import Autoencoder, Vae
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.data import TensorBatches, training_batches
from tabs_assets.science.models.nice import Nice
from tabs_assets.science.models.trained import TrainedModel
from tabs_assets.science.models.training import (
    fit_module,
    train_classifier,
    train_generative_model,
)
from tabs_assets.science.models.training_modules import ClassifierModule

TINY = TrainingConfig(max_epochs=3, patience=100)


def _prepared(config: CakeOnSeaConfig) -> PreparedDataset:
    return prepare_dataset(make_cake_on_sea(config), config.split)


@pytest.fixture(scope="module")
def tiny_data() -> PreparedDataset:
    return _prepared(CakeOnSeaConfig(n_points=3000))


def _zero_couplings(flow: Nice) -> None:
    """Make every m(.) output exactly 0, so z = x * exp(s)."""
    for coupling in flow.couplings:
        last = coupling.shift[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- NICE -------------------------------------------------------------------------------------


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


# --- Classifier, AE, VAE shapes ---------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
def test_classifier_accepts_any_leading_shape(batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = MLPClassifier(4, 3, hidden=[8, 8], dropout=0.1, batch_norm=batch_norm).eval()
    paths = torch.randn(5, 6, 4)
    logits = model(paths)
    assert logits.shape == (5, 6, 3)
    assert torch.allclose(logits[2], model(paths[2]), atol=1e-6)
    assert model(torch.randn(4)).shape == (3,)


def test_classifier_layer_order() -> None:
    model = MLPClassifier(2, 3, hidden=[5], dropout=0.2, batch_norm=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "Dropout", "BatchNorm1d", "ReLU", "Linear"]


def test_autoencoder_and_vae_shapes() -> None:
    torch.manual_seed(0)
    paths = torch.randn(4, 9, 5)
    for model in (Autoencoder(5, 2, [16]), Vae(5, 2, [16], beta=0.5)):
        model.eval()
        z = model.encode(paths)
        assert z.shape == (4, 9, 2)
        assert model.decode(z).shape == (4, 9, 5)
        assert model.latent_dim == 2
        assert model.loss(paths[0]).shape == ()


def test_vae_is_deterministic_at_eval_only() -> None:
    torch.manual_seed(0)
    vae = Vae(3, 2, [8])
    x = torch.randn(10, 3)
    vae.eval()
    mean, _ = vae.encode_distribution(x)
    assert torch.equal(vae.encode(x), vae.encode(x))
    assert torch.equal(vae.encode(x), mean)
    vae.train()
    assert not torch.equal(vae.encode(x), vae.encode(x))


# --- Batching ---------------------------------------------------------------------------------


def test_default_batch_size_gives_twenty_batches() -> None:
    assert resolve_batch_size(57_606, None) == 2_881
    assert resolve_batch_size(57_606, 128) == 128
    data = _prepared(CakeOnSeaConfig())
    batches = training_batches(data, TrainingConfig())
    assert batches.batch_size == 2_881
    assert len(batches) == 20


def test_tensor_batches_shuffle_and_slices() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    ordered = list(TensorBatches((x, y), batch_size=4))
    assert [len(b[0]) for b in ordered] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in ordered]), y)
    shuffled = TensorBatches((x, y), batch_size=4, shuffle=True, seed=3)
    first = torch.cat([b[1] for b in shuffled])
    second = torch.cat([b[1] for b in shuffled])
    assert sorted(first.tolist()) == list(range(10))
    assert not torch.equal(first, second)  # a new permutation each epoch
    assert torch.equal(torch.cat([b[0][:, 0] for b in shuffled]).long().sort().values, y)
    again = TensorBatches((x, y), batch_size=4, shuffle=True, seed=3)
    assert torch.equal(torch.cat([b[1] for b in again]), first)  # seeded


def test_tensor_batches_drop_a_single_row_tail_when_shuffling() -> None:
    x = torch.arange(9.0).unsqueeze(1)
    batches = TensorBatches((x,), batch_size=4, shuffle=True)
    assert len(batches) == 2
    assert [len(b[0]) for b in batches] == [4, 4]


def test_balanced_sampling_draws_classes_at_equal_rates() -> None:
    data = _prepared(CakeOnSeaConfig(n_points=20_000))
    counts = np.asarray(data.class_counts("train"))
    assert counts.min() < 0.1 * counts.sum()  # the cake is a small minority
    batches = training_batches(data, TrainingConfig(balance_classes=True))
    labels = torch.cat([b[1] for b in batches])
    assert len(labels) == counts.sum()
    shares = torch.bincount(labels, minlength=3).double() / len(labels)
    assert torch.allclose(shares, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.03)


def test_weighted_loss_from_per_sample_weights() -> None:
    torch.manual_seed(0)
    module = ClassifierModule(MLPClassifier(2, 3, [4]), learning_rate=1e-3)
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    losses = torch.nn.functional.cross_entropy(module.model(x), y, reduction="none")
    assert torch.allclose(module.training_loss((x, y, w)), losses[[0, 3]].mean())
    assert torch.allclose(module.training_loss((x, y)), losses.mean())


# --- Training ---------------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_weights(tiny_data: PreparedDataset) -> None:
    config = ClassifierConfig(training=TINY)
    first = train_classifier(tiny_data, config)
    second = train_classifier(tiny_data, config)
    assert _states_equal(first.state_dict, second.state_dict)
    assert first.history == second.history
    other = train_classifier(
        tiny_data, ClassifierConfig(training=TINY.model_copy(update={"seed": 1}))
    )
    assert not _states_equal(first.state_dict, other.state_dict)


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
    assert _states_equal(result.state_dict, module.snapshots[2])
    assert not _states_equal(result.state_dict, module.snapshots[-1])
    assert _states_equal(module.model.state_dict(), module.snapshots[2])


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
    assert trained.test_metrics["mse"] >= 0.0
    assert trained.build().latent_dim == config.latent_dim


def test_path_regularization_is_left_to_its_module(tiny_data: PreparedDataset) -> None:
    config = NiceConfig(path_regularization=PathRegularizationConfig(), training=TINY)
    with pytest.raises(NotImplementedError, match="path_regularized"):
        train_generative_model(tiny_data, config)


# --- Storage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [ClassifierConfig(batch_norm=True, training=TINY), NiceConfig(training=TINY)]
)
def test_trained_model_save_load_round_trip(tiny_data: PreparedDataset, config, tmp_path) -> None:
    if isinstance(config, ClassifierConfig):
        trained = train_classifier(tiny_data, config)
    else:
        trained = train_generative_model(tiny_data, config)
    trained.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "weights.safetensors"]
    loaded = TrainedModel.load(tmp_path)
    assert loaded.kind == trained.kind and loaded.spec == trained.spec
    assert loaded.history == trained.history and loaded.best_epoch == trained.best_epoch
    assert loaded.test_metrics == trained.test_metrics
    assert _states_equal(loaded.state_dict, trained.state_dict)
    x = torch.as_tensor(tiny_data.split_arrays("test")[0])
    assert torch.equal(loaded.build()(x), trained.build()(x))


# --- Slow -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_classifier_reaches_98_percent() -> None:
    data = _prepared(CakeOnSeaConfig())
    start = time.perf_counter()
    trained = train_classifier(data, ClassifierConfig())
    seconds = time.perf_counter() - start
    print(
        f"default classifier: {len(trained.history)} epochs (best {trained.best_epoch}), "
        f"{seconds:.1f} s, test {trained.test_metrics}"
    )
    assert trained.test_metrics["accuracy"] >= 0.98
