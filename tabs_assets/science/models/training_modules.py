"""What a training optimises, around the nn.Modules (SCIENCE.md §2).

A training module holds the model and says what one batch costs: ``training_loss`` (a mean over
the batch's rows, which Adam minimises) and ``validation_metrics`` (means over the batch's rows;
``loss`` drives early stopping and the choice of weights). The loop in ``training.fit_module``
turns these into exact epoch means (sum of batch mean x rows / rows), never a plain average of
batch means.

Subclasses add loss terms by overriding ``training_loss`` (and ``validation_metrics``).
"""

import torch
import torch.nn.functional as F
from torch import nn

from tabs_assets.science.models.autoencoders import Autoencoder, Vae
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.nice import Nice

Batch = tuple[torch.Tensor, ...]


class EpochMeanModule(nn.Module):
    """Shared plumbing: the loss hooks and Adam on ``model``."""

    def __init__(self, model: nn.Module, learning_rate: float) -> None:
        super().__init__()
        self.model = model
        self.learning_rate = learning_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The scalar loss to minimise on one training batch (a mean over its rows)."""
        raise NotImplementedError

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Means over the batch's rows; ``loss`` is the one early stopping watches."""
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        """Called before each validation pass (e.g. to re-seed what validation draws)."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Only the wrapped model is optimised: a subclass may hold frozen helper modules.
        return torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)


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
