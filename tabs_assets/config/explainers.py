"""Explainer configs (SCIENCE.md §4). Every explainer returns S = n_steps + 1 points."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from tabs_assets.config.base import StrictModel

SourceMode = Literal["initial", "current"]
DistanceKind = Literal["smooth_l1", "l1_subgradient"]
DISTANCE_DESCRIPTION = (
    "smooth_l1: sum sqrt(d^2 + s^2) - s, smooth at d = 0 (stable paths); l1_subgradient: "
    "the L1 norm with subgradient sign(d), chaotic where d is rounding noise (README)"
)
DISTANCE_SCALE_DESCRIPTION = (
    "s of smooth_l1, normalised units: quadratic for abs(d) << s, L1 beyond; 0.03 measured stable "
    "(README); keep step_size * distance_weight / s < 2 with sgd"
)


class ThresholdSearchConfig(StrictModel):
    """The original Gifsplanation search: grow the shift until p_t crosses ``threshold``."""

    threshold: float = Field(0.5, gt=0, lt=1)
    max_shift: float = Field(100.0, gt=0, description="largest lambda tried")
    growth: float = Field(1.5, gt=1, description="multiplicative growth of lambda per try")


class BaseExplainerConfig(StrictModel):
    """What an explainer can do, as data: the pipeline reads these, never the config's type.

    Adding an explainer means a config here (with its capabilities) and its search in
    ``science/explainers.py``; the asset graph, the trainers and the reports follow.
    """

    needs_generative_model: ClassVar[bool] = True
    """The paths need a trained generative model (an upstream asset)."""
    works_in_latent_space: ClassVar[bool] = True
    """The search moves latents z that are decoded to points; False: it moves the points."""

    # Every explainer takes n_steps steps of some size (register's limits read both).
    n_steps: int = Field(99, ge=1, description="M; the path has M + 1 points")
    step_size: float = Field(0.01, gt=0, description="eta (sgd) or the learning rate (adam)")


def _descent_label(method: str, distance_weight: float) -> str:
    """Short readable name for reports: method+l1(lambda_d) when there is a distance term."""
    return method + (f"+l1({distance_weight:g})" if distance_weight else "")


class LatentShiftConfig(BaseExplainerConfig):
    """One gradient at z0 = E(x); z_i = z0 - i * step_size * g."""

    method: Literal["latent_shift"] = "latent_shift"
    normalize_gradient: bool = False
    threshold_search: ThresholdSearchConfig | None = None
    source: SourceMode = "initial"

    @property
    def label(self) -> str:
        return self.method


class ReviseConfig(BaseExplainerConfig):
    """Gradient descent in latent space with an L1 distance term to the input."""

    method: Literal["revise"] = "revise"
    distance_weight: float = Field(
        0.0, ge=0, description="lambda_d on the distance term of Dec(z) - x"
    )
    distance: DistanceKind = Field("smooth_l1", description=DISTANCE_DESCRIPTION)
    distance_scale: float = Field(0.03, gt=0, description=DISTANCE_SCALE_DESCRIPTION)
    optimizer: Literal["sgd", "adam"] = "sgd"
    gradient_every: int = Field(1, ge=1, description="k: a new gradient every k steps")
    source: SourceMode = "initial"

    @property
    def label(self) -> str:
        return _descent_label(self.method, self.distance_weight)


class WachterConfig(BaseExplainerConfig):
    """The same descent directly in input space (no generative model)."""

    needs_generative_model: ClassVar[bool] = False
    works_in_latent_space: ClassVar[bool] = False

    method: Literal["wachter"] = "wachter"
    distance_weight: float = Field(0.0, ge=0)
    distance: DistanceKind = Field("smooth_l1", description=DISTANCE_DESCRIPTION)
    distance_scale: float = Field(0.03, gt=0, description=DISTANCE_SCALE_DESCRIPTION)
    optimizer: Literal["sgd", "adam"] = "sgd"
    gradient_every: int = Field(1, ge=1)
    source: SourceMode = "initial"

    @property
    def label(self) -> str:
        return _descent_label(self.method, self.distance_weight)


ExplainerConfig = Annotated[
    LatentShiftConfig | ReviseConfig | WachterConfig, Field(discriminator="method")
]
