"""LightningModules around the nn.Modules (SCIENCE.md §2).

Epoch metrics are exact means over the rows seen (never plain averages of batch means), and
they are accumulated on the device so training steps never wait for a host sync; the host
reads them once per epoch.

Optimisation is manual (``training_step`` does zero_grad / backward / Adam step on the raw
optimiser), which keeps Lightning's per-step overhead small for these small models; as a
consequence ``trainer.global_step`` stays 0. Subclasses add loss terms by overriding
``training_loss`` (and ``validation_metrics``), not ``training_step``.
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
    """Shared plumbing: the ``training_loss`` hook, exact epoch means, Adam on ``model``."""

    def __init__(self, model: nn.Module, learning_rate: float) -> None:
        super().__init__()
        # Manual optimisation: Lightning's automatic closure machinery costs more per step than
        # a small tabular model's forward/backward (benchmarks/train_loop.py).
        self.automatic_optimization = False
        self.model = model
        self.learning_rate = learning_rate
        self.val_metrics: dict[str, float] = {}
        self._train_sum = torch.zeros(())
        self._train_rows = 0
        self._val_sums: dict[str, torch.Tensor] = {}
        self._val_rows = 0

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

    def transfer_batch_to_device(
        self, batch: Batch, device: torch.device, dataloader_idx: int
    ) -> Batch:
        # TensorBatches preloads the splits on the training device: skip Lightning's generic
        # collection walk (a few % of a small model's step) when nothing has to move.
        if isinstance(batch, tuple) and all(
            isinstance(t, torch.Tensor) and t.device == device for t in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_epoch_start(self) -> None:
        self._train_sum = torch.zeros((), device=self.device)
        self._train_rows = 0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers(use_pl_optimizer=False)
        optimizer.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        self.manual_backward(loss)
        optimizer.step()
        rows = len(batch[0])
        self._train_sum += loss.detach() * rows
        self._train_rows += rows
        return loss

    def epoch_train_loss(self) -> float:
        """Mean training loss over the rows of the current epoch."""
        return float(self._train_sum / max(self._train_rows, 1))

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}
        self._val_rows = 0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        rows = len(batch[0])
        for name, value in self.validation_metrics(batch).items():
            weighted = value.detach().float() * rows
            self._val_sums[name] = self._val_sums.get(name, 0.0) + weighted
        self._val_rows += rows

    def on_validation_epoch_end(self) -> None:
        self.val_metrics = {
            f"val_{name}": float(total / max(self._val_rows, 1))
            for name, total in self._val_sums.items()
        }
        # EarlyStopping reads val_loss from trainer.callback_metrics. The other epoch metrics go
        # to the history (training.BestWeights): each self.log costs ~0.5 ms of Lightning
        # bookkeeping, a sizeable share of a 20-step epoch of a small model.
        self.log("val_loss", self.val_metrics["val_loss"])


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
