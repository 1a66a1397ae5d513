"""Model configs (SCIENCE.md §2, §5): classifier, generative models, training."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from tabs_assets.config.base import HiddenSizes, Seed, StrictModel, neutral
from tabs_assets.config.explainers import ExplainerConfig, LatentShiftConfig
from tabs_assets.config.losses import GeneralValidityLoss, ValidityLossConfig

BATCHES_PER_EPOCH = 20


def resolve_batch_size(n_train: int, batch_size: int | None) -> int:
    """The configured batch size, or ceil(n_train / BATCHES_PER_EPOCH) when it is None."""
    if batch_size is not None:
        return batch_size
    return max(1, -(-n_train // BATCHES_PER_EPOCH))


class TrainingConfig(StrictModel):
    """Seeded training with early stopping; the best validation weights are kept."""

    seed: Seed = 42
    max_epochs: int = Field(200, gt=0, description="finite cap on epochs")
    patience: int = Field(3, ge=1, description="early stopping on val loss")
    min_delta: float = Field(1e-3, ge=0)
    learning_rate: float = Field(1e-3, gt=0, le=10)
    batch_size: int | None = Field(
        None,
        gt=0,
        description=f"None = derived from the data: ceil(n_train / {BATCHES_PER_EPOCH})",
    )
    balance_classes: bool = Field(
        False, description="weight samples by 1/count(class) of the training split"
    )
    accelerator: Literal["auto", "cpu", "gpu"] = neutral(
        "auto", "Lightning Fabric accelerator; auto = GPU when present"
    )
    progress_bar: bool = neutral(False, "a progress bar over the epochs (tqdm)")


class ClassifierConfig(StrictModel):
    """MLP: (Linear -> Dropout? -> BatchNorm? -> ReLU) per hidden layer, then Linear to C logits."""

    hidden: HiddenSizes = Field(default_factory=lambda: [50, 50])
    dropout: float = Field(0.0, ge=0, lt=1)
    batch_norm: bool = False
    training: TrainingConfig = TrainingConfig()


class PathRegularizationConfig(StrictModel):
    """Train NICE with a path loss on explainer paths; the classifier stays frozen (§5)."""

    path_loss: Literal["boundary_cross", "max_point"] = "boundary_cross"
    path_weight: float = Field(1.0, ge=0, description="lambda_path")
    validity_weight: float = Field(0.0, ge=0, description="lambda_cf on Dec(Z)")
    explainer: ExplainerConfig = LatentShiftConfig()
    loss: ValidityLossConfig = GeneralValidityLoss()
    detach_latents: bool = Field(True, description="only the decoder path is shaped")


class BaseGenerativeConfig(StrictModel):
    """What a generative model is, as data: the pipeline reads these, never the config's type."""

    is_flow: ClassVar[bool] = False
    """An invertible flow: its latent space is as wide as the data (latent maps are drawn)."""

    @property
    def label(self) -> str:
        """Short readable name for report rows and columns."""
        return self.kind  # type: ignore[attr-defined]  # every generative config has a kind

    @property
    def path_regularized(self) -> bool:
        """Trained with the explainers' path loss (needs the classifier upstream, §5)."""
        return False


class NiceConfig(BaseGenerativeConfig):
    """NICE normalizing flow: additive couplings + diagonal scaling, latent width = D."""

    is_flow: ClassVar[bool] = True

    kind: Literal["nice"] = "nice"
    coupling_layers: int = Field(4, ge=2)
    hidden: HiddenSizes = Field(default_factory=lambda: [20, 20])
    prior: Literal["gaussian", "logistic"] = "gaussian"
    path_regularization: PathRegularizationConfig | None = None
    training: TrainingConfig = TrainingConfig()

    @property
    def path_regularized(self) -> bool:
        return self.path_regularization is not None

    @property
    def label(self) -> str:
        """Short readable name for report rows and columns: kind(+path loss)."""
        regularization = self.path_regularization
        return self.kind + (f"+{regularization.path_loss}" if regularization else "")


class AutoencoderConfig(BaseGenerativeConfig):
    """Deterministic autoencoder."""

    kind: Literal["ae"] = "ae"
    latent_dim: int = Field(2, gt=0)
    hidden: HiddenSizes = Field(default_factory=lambda: [50, 50])
    training: TrainingConfig = TrainingConfig()


class VaeConfig(BaseGenerativeConfig):
    """VAE with beta-weighted KL; the mean is used at evaluation time."""

    kind: Literal["vae"] = "vae"
    latent_dim: int = Field(2, gt=0)
    hidden: HiddenSizes = Field(default_factory=lambda: [50, 50])
    beta: float = Field(1.0, gt=0)
    training: TrainingConfig = TrainingConfig()


GenerativeModelConfig = Annotated[
    NiceConfig | AutoencoderConfig | VaeConfig, Field(discriminator="kind")
]


class ReferenceDensityConfig(NiceConfig):
    """The unregularized NICE that scores the plausibility (NLL) of path points."""

    @model_validator(mode="after")
    def _unregularized(self) -> "ReferenceDensityConfig":
        if self.path_regularization is not None:
            raise ValueError("the reference density model must not be path-regularized")
        return self
