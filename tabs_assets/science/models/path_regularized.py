"""Path-regularized NICE (SCIENCE.md §5): NLL + lambda_path * path loss on explainer paths.

Per batch: y_s = classifier prediction, y_t = a random other class, Z = the explainer's latents
for (x, y_t) from the same code as the explainers (``path_latents``), and the path losses are
taken on Dec(Z). The classifier is a frozen private copy: no gradients, eval mode, never in the
optimiser (the research code fine-tuned it by accident). Z is detached by default, so only the
decoder path is shaped; ``detach_latents: false`` keeps the graph through E and the gradient.
"""

import copy

import lightning as L
import torch
from torch import Tensor, nn

from tabs_assets.config.models import NiceConfig, PathRegularizationConfig
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.explainers.explain import path_latents
from tabs_assets.science.explainers.paths import other_classes
from tabs_assets.science.losses import pick, validity_loss
from tabs_assets.science.models.nice import Nice
from tabs_assets.science.models.trained import TrainedModel, build_module
from tabs_assets.science.models.training import (
    EpochCallback,
    _spec,
    fit_module,
    generative_test_metrics,
)
from tabs_assets.science.models.training_modules import Batch, FlowModule

VALIDATION_TARGET_SEED_OFFSET = 1
"""Validation targets come from their own generator, re-seeded every validation epoch."""
VALIDATION_CHUNK_ROWS = 4096
"""Validation rows per explainer call: bounds the [S, rows, D] path tensors (memory only)."""


def boundary_cross_loss(logits: Tensor, sources: Tensor, targets: Tensor) -> Tensor:
    """-mean over steps and paths of max(p_s, p_t), for logits [S, B, C] and labels [B]."""
    probabilities = torch.softmax(logits, dim=-1)
    return -torch.maximum(pick(probabilities, sources), pick(probabilities, targets)).mean()


def max_point_loss(points: Tensor, x_max: Tensor) -> Tensor:
    """Mean over paths of the min over steps of ||point - x_max||_2, for points [S, B, D]."""
    return (points - x_max).norm(dim=-1).amin(0).mean()


def frozen_copy(classifier: nn.Module) -> nn.Module:
    """A private copy with requires_grad False in eval mode: the caller's module is untouched."""
    frozen = copy.deepcopy(classifier)
    frozen.requires_grad_(False)
    return frozen.eval()


def training_max_point(data: PreparedDataset) -> Tensor:
    """x_max: the per-feature max of the normalised training inputs."""
    features, _ = data.split_arrays("train")
    return torch.as_tensor(features.max(axis=0), dtype=torch.float32)


class PathRegularizedFlowModule(FlowModule):
    """FlowModule whose loss adds the path terms; only ``model`` (the NICE) is optimised."""

    def __init__(
        self,
        model: Nice,
        learning_rate: float,
        classifier: nn.Module,
        x_max: Tensor,
        config: PathRegularizationConfig,
        seed: int,
    ) -> None:
        super().__init__(model, learning_rate)
        if not config.explainer.works_in_latent_space:
            raise ValueError(
                f"path_regularization.explainer: {config.explainer.method} paths do not go "
                "through the flow; use latent_shift or revise"
            )
        # Held outside the module tree: the training loop neither switches it to train mode nor
        # moves it with the model; path_terms moves it to the batch's device.
        self._frozen = (frozen_copy(classifier),)
        self.register_buffer("x_max", x_max.detach().clone().float())
        self.config = config
        self.seed = seed
        self._train_targets = torch.Generator().manual_seed(seed)
        self._val_targets = torch.Generator()

    @property
    def classifier(self) -> nn.Module:
        """The frozen classifier copy (eval mode, requires_grad False)."""
        return self._frozen[0]

    def path_terms(self, x: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """NLL, path loss, validity loss and the total for one batch of rows x [B, D]."""
        self.classifier.to(x.device)
        with torch.no_grad():
            logits0 = self.classifier(x)
        sources = logits0.argmax(-1)
        targets = other_classes(sources, logits0.shape[-1], generator)
        latents = path_latents(
            x,
            sources,
            targets,
            self.classifier,
            self.model,
            self.config.explainer,
            self.config.loss,
            differentiable=not self.config.detach_latents,
        )
        points = self.model.decode(latents)  # [S, B, D], differentiable w.r.t. the decoder
        logits = self.classifier(points)
        if self.config.path_loss == "boundary_cross":
            path = boundary_cross_loss(logits, sources, targets)
        else:
            path = max_point_loss(points, self.x_max)
        validity = validity_loss(logits, sources, targets, self.config.loss).mean()
        nll = self.model.nll(x)
        total = nll + self.config.path_weight * path
        if self.config.validity_weight:
            total = total + self.config.validity_weight * validity
        return {"loss": total, "nll": nll, "path_loss": path, "validity_loss": validity}

    def training_loss(self, batch: Batch) -> Tensor:
        return self.path_terms(batch[0], self._train_targets)["loss"]

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        # The same validation targets every epoch, so val_loss compares epochs fairly.
        self._val_targets.manual_seed(self.seed + VALIDATION_TARGET_SEED_OFFSET)

    def validation_metrics(self, batch: Batch) -> dict[str, Tensor]:
        """Row-weighted means over chunks of the (large) validation batch: exact, less memory."""
        x = batch[0]
        sums: dict[str, Tensor] = {}
        # The explainer needs gradients w.r.t. the latents, which the validation pass
        # (inference mode) forbids: step out of it and clone the rows out of inference tensors.
        with torch.inference_mode(False), torch.enable_grad():
            for rows in x.split(VALIDATION_CHUNK_ROWS):
                terms = self.path_terms(rows.clone(), self._val_targets)
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.detach() * len(rows)
        return {name: total / len(x) for name, total in sums.items()}


def train_path_regularized_nice(
    data: PreparedDataset,
    config: NiceConfig,
    classifier: nn.Module,
    on_epoch_end: EpochCallback | None = None,
) -> TrainedModel:
    """Train NICE with ``config.path_regularization`` against a frozen copy of ``classifier``.

    Early stopping and the kept weights follow the full regularized validation loss; the test
    metrics are the plain NICE ones (NLL, round-trip error).
    """
    if config.path_regularization is None:
        raise ValueError("generative_model.path_regularization is not set")
    L.seed_everything(config.training.seed, verbose=False)
    spec = _spec(config, data)
    model = build_module("nice", spec)
    module = PathRegularizedFlowModule(
        model,
        config.training.learning_rate,
        classifier,
        training_max_point(data),
        config.path_regularization,
        config.training.seed,
    )
    fitted = fit_module(module, data, config.training, on_epoch_end)
    trained = TrainedModel("nice", spec, fitted.state_dict, fitted.history, {}, fitted.best_epoch)
    trained.test_metrics = generative_test_metrics("nice", trained.build(), data)
    return trained
