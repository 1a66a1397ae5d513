"""LightningModules around the nn.Modules (SCIENCE.md §2).

Lightning as its examples use it: automatic optimisation (``training_step`` returns the loss;
Lightning zeroes the gradients, calls backward and steps Adam) and epoch metrics through
``self.log``. Validation logs ``self.log_dict(..., on_epoch=True, batch_size=rows)``, whose
epoch value is the exact mean over the rows seen (sum of batch mean x rows / rows, never a plain
average of batch means). Early stopping and the kept weights (``training.BestWeights``) read the
logged ``val_loss`` from ``trainer.callback_metrics``. The one departure, the training loss, is
explained in ``training_step``.

Subclasses add loss terms by overriding ``training_loss`` (and ``validation_metrics``), not
``training_step``.
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from tabs_assets.science.models.autoencoders import Autoencoder, Vae
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.nice import Nice

Batch = tuple[torch.Tensor, ...]


class EpochMeanModule(L.LightningModule):
    """Shared plumbing: the ``training_loss`` hook, logged epoch means, Adam on ``model``."""

    def __init__(self, model: nn.Module, learning_rate: float) -> None:
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate
        self._train_sum = torch.zeros(())
        self._train_rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The scalar loss to minimise on one training batch (a mean over its rows)."""
        raise NotImplementedError

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Means over the batch's rows; ``loss`` is the one early stopping watches."""
        raise NotImplementedError

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Only the wrapped model is optimised: a subclass may hold frozen helper modules.
        return torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)

    def on_train_epoch_start(self) -> None:
        self._train_sum = torch.zeros((), device=self.device)
        self._train_rows = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        # The same row-weighted sum self.log(on_epoch=True, batch_size=rows) keeps, kept here on
        # the device and logged once per epoch: a self.log call costs ~0.5 ms of Lightning
        # bookkeeping (it walks and copies its metric state on every call), a quarter of a small
        # model's 2 ms step (benchmarks/train_loop.py: 1.35-1.65x a plain loop with it per step).
        rows = len(batch[0])
        self._train_sum = self._train_sum + loss.detach() * rows
        self._train_rows += rows
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train_loss", self._train_sum / max(self._train_rows, 1))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        metrics = {f"val_{name}": value for name, value in self.validation_metrics(batch).items()}
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(batch[0]))


class ClassifierModule(EpochMeanModule):
    """Mean cross-entropy; a batch (x, y, w) weights each row's loss by w."""

    def __init__(self, model: MLPClassifier, learning_rate: float) -> None:
        super().__init__(model, learning_rate)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        x, y, *weights = batch
        losses = F.cross_entropy(self.model(x), y, reduction="none")
        if not weights:
            return losses.mean()
        return (losses * weights[0]).sum() / weights[0].sum()

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        logits = self.model(x)
        return {
            "loss": F.cross_entropy(logits, y),
            "accuracy": (logits.argmax(-1) == y).float().mean(),
        }


class FlowModule(EpochMeanModule):
    """NICE trained by its negative log-likelihood; batches are (x, ...) and labels are unused."""

    def __init__(self, model: Nice, learning_rate: float) -> None:
        super().__init__(model, learning_rate)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return self.model.nll(batch[0])

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.model.nll(batch[0])}


class AutoencoderModule(EpochMeanModule):
    """AE (reconstruction MSE) or VAE (MSE + beta * KL); validation uses the eval-mode mean."""

    def __init__(self, model: Autoencoder | Vae, learning_rate: float) -> None:
        super().__init__(model, learning_rate)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch[0])

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.model.loss(batch[0])}
