"""Seeded Lightning training that keeps the best validation weights (SCIENCE.md §2).

The training split fits, the validation split drives early stopping and the choice of weights,
the test split is only read once at the end for the test metrics.
"""

import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
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
    evaluation_batches,
    split_tensors,
    training_batches,
)
from tabs_assets.science.models.lightning_modules import (
    AutoencoderModule,
    ClassifierModule,
    EpochMeanModule,
    FlowModule,
)
from tabs_assets.science.models.trained import ModelKind, TrainedModel, build_module

EpochCallback = Callable[[dict[str, float]], None]
GenerativeConfig = NiceConfig | AutoencoderConfig | VaeConfig | ReferenceDensityConfig
# Lightning's start-up chatter ("GPU available: ...") goes through these loggers.
_CHATTY_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


@dataclass
class FitResult:
    """What ``fit_module`` returns: the best weights (CPU copies) and the epoch history."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int


class BestWeights(Checkpoint):
    """Records one history row per epoch and copies the weights at each val_loss improvement.

    An in-memory ``ModelCheckpoint(monitor="val_loss", mode="min", save_top_k=1)``: it reads the
    epoch means the module logged from ``trainer.callback_metrics`` as ModelCheckpoint does, but
    keeps a CPU copy of the weights instead of writing a checkpoint file per improvement (the
    trained model goes to the store; a training writes no files of its own). Being a
    ``Checkpoint``, Lightning runs its ``on_train_epoch_end`` after the module's, which logs
    ``train_loss`` there.
    """

    def __init__(self, on_epoch_end: EpochCallback | None = None) -> None:
        self.on_epoch_end = on_epoch_end
        self.history: list[dict[str, float]] = []
        self.best_loss = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here the training metrics are already reduced over the epoch, and the validation
        # metrics are those of this epoch's validation pass (it runs before this hook).
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        row = {"epoch": trainer.current_epoch, "train_loss": metrics.pop("train_loss"), **metrics}
        self.history.append(row)
        # Strictly lower is better; min_delta only governs patience, not which weights are kept.
        if row.get("val_loss", math.inf) < self.best_loss:
            self.best_loss = row["val_loss"]
            self.best_epoch = trainer.current_epoch
            self.best_state = _cpu_copy(pl_module.model.state_dict())
        if self.on_epoch_end is not None:
            self.on_epoch_end(dict(row))


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", copy=True) for name, t in state.items()}


@contextmanager
def _scoped_global_state() -> Iterator[None]:
    """Undo the process-wide switches a deterministic Trainer flips, and mute its chatter.

    ``Trainer(deterministic=...)`` calls ``torch.use_deterministic_algorithms`` and sets
    ``cudnn.benchmark`` for the whole process and never restores them; Lightning has no scoped
    form. Dagster's in-process executor runs the next steps (explainers, metrics, other
    trainings of a study) in the same process, so they would inherit the switches. Lightning's
    start-up info lines and its own use of a deprecated torch pytree API are noise a user cannot
    act on; the determinism warnings ("warn" mode) stay visible.
    """
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def make_trainer(training: TrainingConfig, callbacks: Sequence[Callback]) -> L.Trainer:
    """A Trainer that writes no files: no logger, no checkpoint files, no sanity validation."""
    return L.Trainer(
        max_epochs=training.max_epochs,
        accelerator=training.accelerator,
        devices=1,
        # "warn": deterministic where an algorithm allows it, a warning (not an error) elsewhere.
        deterministic="warn",
        logger=False,
        # BestWeights is the checkpoint callback (in memory); without one Lightning would add a
        # ModelCheckpoint that writes files.
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        enable_progress_bar=training.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def fit_module(
    module: EpochMeanModule,
    data: PreparedDataset,
    training: TrainingConfig,
    on_epoch_end: EpochCallback | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Fit on the training split with early stopping on val_loss; load the best weights back."""
    recorder = BestWeights(on_epoch_end)
    stopper = EarlyStopping(
        monitor="val_loss", patience=training.patience, min_delta=training.min_delta, mode="min"
    )
    with _scoped_global_state():
        trainer = make_trainer(training, [recorder, stopper, *callbacks])
        # Preload every split on the training device once; batches are then gathers there.
        device = trainer.strategy.root_device
        trainer.fit(
            module,
            train_dataloaders=training_batches(data, training, device),
            val_dataloaders=evaluation_batches(data, "val", device),
        )
    best_state = recorder.best_state or _cpu_copy(module.model.state_dict())
    module.model.load_state_dict(best_state)
    return FitResult(best_state, recorder.history, recorder.best_epoch)


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
