"""Seeded training that keeps the best validation weights (SCIENCE.md §2).

The training split fits, the validation split drives early stopping and the choice of weights,
the test split is only read once at the end for the test metrics.

The loop is written out here on Lightning Fabric (which picks the accelerator and does the
backward pass) rather than run by Lightning's ``Trainer``: on the small models of this project
the Trainer's hooks, closures and logging cost 20-45 % on top of the computation
(benchmarks/train_loop.py, README "Performance"), and everything it did for us is a few lines:
epoch means, early stopping on ``val_loss`` (Lightning's ``EarlyStopping`` rule) and a CPU copy
of the best weights.
"""

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from sklearn.metrics import confusion_matrix, f1_score
from torch import nn

from tabs_assets.config.models import (
    AutoencoderConfig,
    ClassifierConfig,
    NiceConfig,
    ReferenceDensityConfig,
    TrainingConfig,
    VaeConfig,
    resolve_batch_size,
)
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.models.data import (
    EVAL_BATCH_ROWS,
    TensorBatches,
    evaluation_batches,
    split_tensors,
    training_batches,
)
from tabs_assets.science.models.trained import ModelKind, TrainedModel, build_module
from tabs_assets.science.models.training_modules import (
    AutoencoderModule,
    ClassifierModule,
    EpochMeanModule,
    FlowModule,
)

EpochCallback = Callable[[dict[str, float]], None]
GenerativeConfig = NiceConfig | AutoencoderConfig | VaeConfig | ReferenceDensityConfig


@dataclass
class FitResult:
    """What ``fit_module`` returns: the best weights (CPU copies) and the epoch history."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int


class EarlyStopping:
    """Lightning's ``EarlyStopping(monitor="val_loss", mode="min")`` rule, without a Trainer.

    An epoch improves when ``val_loss < best - min_delta``; training stops after ``patience``
    epochs without improvement, or at once when ``val_loss`` is not finite.
    """

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = torch.tensor(math.inf)
        self.wait = 0

    def should_stop(self, val_loss: torch.Tensor) -> bool:
        if not torch.isfinite(val_loss):
            return True
        if val_loss + self.min_delta < self.best:
            self.best, self.wait = val_loss, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in state.items()}


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms where torch has them (a warning elsewhere), for this fit only.

    ``torch.use_deterministic_algorithms`` and ``cudnn.benchmark`` are process-wide; Dagster's
    in-process executor runs the next steps (explainers, metrics, other trainings of a study)
    in the same process, so they are put back afterwards.
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


def _train_epoch(
    fabric: L.Fabric, module: EpochMeanModule, optimizer: Any, batches: TensorBatches
) -> torch.Tensor:
    """One pass of Adam over the batches; the row-weighted mean training loss (on the device)."""
    module.train()
    total = torch.zeros((), device=fabric.device)
    rows = 0
    for batch in batches:
        loss = module.training_loss(batch)
        optimizer.zero_grad()
        fabric.backward(loss)
        optimizer.step()
        total = total + loss.detach() * len(batch[0])
        rows += len(batch[0])
    return total / max(rows, 1)


def _validate(module: EpochMeanModule, batches: TensorBatches) -> dict[str, torch.Tensor]:
    """``val_<name>``: the row-weighted mean of each validation metric over the split."""
    module.eval()
    module.on_validation_epoch_start()
    sums: dict[str, torch.Tensor] = {}
    rows = 0
    with torch.inference_mode():
        for batch in batches:
            for name, value in module.validation_metrics(batch).items():
                sums[name] = sums.get(name, 0.0) + value.float() * len(batch[0])
            rows += len(batch[0])
    return {f"val_{name}": total / rows for name, total in sums.items()}


def fit_module(
    module: EpochMeanModule,
    data: PreparedDataset,
    training: TrainingConfig,
    on_epoch_end: EpochCallback | None = None,
) -> FitResult:
    """Fit on the training split with early stopping on val_loss; load the best weights back.

    One history row per epoch: ``epoch``, ``train_loss`` and the ``val_*`` metrics.
    """
    # One process, one device: no cluster environment to detect (on a Slurm node Lightning
    # would otherwise warn on every fit that `srun` is available but not used).
    fabric = L.Fabric(accelerator=training.accelerator, devices=1, plugins=[LightningEnvironment()])
    with _deterministic():
        # The loop calls the module's loss hooks itself (not its forward through a Fabric
        # wrapper), so the module only needs to be on the device.
        module = fabric.to_device(module)
        optimizer = fabric.setup_optimizers(module.configure_optimizers())
        # Preload every split on the training device once; batches are then gathers there.
        train = training_batches(data, training, fabric.device)
        val = evaluation_batches(data, "val", fabric.device)
        stopper = EarlyStopping(training.patience, training.min_delta)
        history: list[dict[str, float]] = []
        best_loss, best_epoch, best_state = math.inf, -1, None
        for epoch in _epochs(training):
            train_loss = _train_epoch(fabric, module, optimizer, train)
            metrics = _validate(module, val)
            row = {"epoch": epoch, "train_loss": float(train_loss)}
            row.update({name: float(value) for name, value in metrics.items()})
            history.append(row)
            # Strictly lower is better; min_delta only governs patience, not the kept weights.
            if row["val_loss"] < best_loss:
                best_loss, best_epoch = row["val_loss"], epoch
                best_state = _cpu_copy(module.model.state_dict())
            if on_epoch_end is not None:
                on_epoch_end(dict(row))
            if stopper.should_stop(metrics["val_loss"].cpu()):
                break
    best_state = best_state or _cpu_copy(module.model.state_dict())
    module.model.load_state_dict(best_state)
    return FitResult(best_state, history, best_epoch)


def _epochs(training: TrainingConfig) -> Iterable[int]:
    """0 .. max_epochs - 1, as a progress bar over epochs when ``training.progress_bar``."""
    if not training.progress_bar:
        return range(training.max_epochs)
    from tqdm.auto import tqdm

    return tqdm(range(training.max_epochs), desc="epochs", unit="epoch")


def _spec(config: ClassifierConfig | GenerativeConfig, data: PreparedDataset) -> dict[str, Any]:
    n_train = len(data.split_indices["train"])
    return {
        **config.model_dump(mode="json"),
        "input_dim": data.input_dim,
        "n_classes": data.n_classes,
        "batch_size": resolve_batch_size(n_train, config.training.batch_size),
    }


def _map_test_rows(
    model: Callable[[torch.Tensor], torch.Tensor], data: PreparedDataset
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, labels, model(features)) over the whole test split, in chunks, no grad."""
    features, labels = split_tensors(data, "test")
    with torch.inference_mode():
        outputs = torch.cat([model(chunk) for chunk in features.split(EVAL_BATCH_ROWS)])
    return features, labels, outputs


def classifier_test_metrics(model: nn.Module, data: PreparedDataset) -> dict[str, Any]:
    """Accuracy, macro F1, mean cross-entropy and the confusion matrix (rows = true class)."""
    _, labels, logits = _map_test_rows(model, data)
    predicted = logits.argmax(-1).numpy()
    truth = labels.numpy()
    classes = np.arange(data.n_classes)
    return {
        "accuracy": float((predicted == truth).mean()),
        "macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro")),
        "cross_entropy": float(torch.nn.functional.cross_entropy(logits, labels)),
        "confusion_matrix": confusion_matrix(truth, predicted, labels=classes).tolist(),
    }


def generative_test_metrics(kind: ModelKind, model: nn.Module, data: PreparedDataset) -> dict:
    """NICE: mean test NLL and max |decode(encode(x)) - x|; AE/VAE: reconstruction MSE."""
    if kind == "nice":
        features, _, log_prob = _map_test_rows(model.log_prob, data)
        _, _, round_trip = _map_test_rows(lambda x: model.decode(model.encode(x)), data)
        return {
            "nll": float(-log_prob.mean()),
            "round_trip_error": float((round_trip - features).abs().max()),
        }
    features, _, reconstruction = _map_test_rows(model, data)
    return {"mse": float((reconstruction - features).pow(2).mean())}


def train_classifier(
    data: PreparedDataset, config: ClassifierConfig, on_epoch_end: EpochCallback | None = None
) -> TrainedModel:
    """Train the MLP classifier; test accuracy, macro F1 and confusion matrix on the test split."""
    L.seed_everything(config.training.seed, verbose=False)
    spec = _spec(config, data)
    model = build_module("classifier", spec)
    module = ClassifierModule(model, config.training.learning_rate)
    fitted = fit_module(module, data, config.training, on_epoch_end)
    trained = TrainedModel(
        "classifier", spec, fitted.state_dict, fitted.history, {}, fitted.best_epoch
    )
    trained.test_metrics = classifier_test_metrics(trained.build(), data)
    return trained


def train_generative_model(
    data: PreparedDataset, config: GenerativeConfig, on_epoch_end: EpochCallback | None = None
) -> TrainedModel:
    """Train NICE (NLL), an AE (MSE) or a VAE (MSE + beta * KL) on the training features."""
    if config.path_regularized:
        raise NotImplementedError(
            "path regularization is trained by tabs_assets.science.models.path_regularized"
        )
    L.seed_everything(config.training.seed, verbose=False)
    kind: ModelKind = config.kind  # a ReferenceDensityConfig is a NICE: kind "nice"
    spec = _spec(config, data)
    model = build_module(kind, spec)
    lr = config.training.learning_rate
    module = FlowModule(model, lr) if kind == "nice" else AutoencoderModule(model, lr)
    fitted = fit_module(module, data, config.training, on_epoch_end)
    trained = TrainedModel(kind, spec, fitted.state_dict, fitted.history, {}, fitted.best_epoch)
    trained.test_metrics = generative_test_metrics(kind, trained.build(), data)
    return trained
