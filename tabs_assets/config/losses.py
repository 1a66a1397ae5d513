"""Validity loss configs (SCIENCE.md §3). Lower is better; explainers descend along -grad."""

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tabs_assets.config.base import StrictModel

DEFAULT_CLASS_WEIGHT = 1.0


class BaseValidityLoss(StrictModel):
    """What a validity loss is, as data: the pipeline reads these, never the config's type.

    Adding a loss means a config here and its formula in ``science/losses.py:FORMULAS``.
    """

    kind: str

    @property
    def label(self) -> str:
        """Short readable name for reports and figure titles."""
        return self.kind

    @property
    def loss_weight(self) -> float:
        """The class weight of the loss (the ``loss_weight`` report label); NaN: it has none."""
        return math.nan


class GeneralValidityLoss(BaseValidityLoss):
    """L = -k_t + w_s * k_s + w_o * sum_{c not in {s,t}} k_c.

    ``classes`` picks (w_s, w_o): target -> (0, 0), source -> (weight, 0), others ->
    (weight, weight). The default (logit, source, 1) is LossLogitSource = -f_t + f_s.
    """

    kind: Literal["general"] = "general"
    quantity: Literal["logit", "prb", "log_prb"] = "logit"
    classes: Literal["target", "source", "others"] = "source"
    weight: float = DEFAULT_CLASS_WEIGHT

    @model_validator(mode="after")
    def _weight_has_effect(self) -> "GeneralValidityLoss":
        if self.classes == "target" and self.weight != DEFAULT_CLASS_WEIGHT:
            raise ValueError("weight has no effect when classes = 'target'; leave it at 1.0")
        return self

    @property
    def label(self) -> str:
        return f"{self.quantity}/{self.classes}"

    @property
    def loss_weight(self) -> float:
        return self.weight


class TargetCrossEntropyLoss(BaseValidityLoss):
    """-log p_t."""

    kind: Literal["target_ce"] = "target_ce"


class BinaryStretchLoss(BaseValidityLoss):
    """(log p_s - log p_t) / 2."""

    kind: Literal["binary_stretch"] = "binary_stretch"


class StretchLoss(BaseValidityLoss):
    """(2 CE(f, t) - sum_c CE(f, c)) / C."""

    kind: Literal["stretch"] = "stretch"


class AwayLoss(BaseValidityLoss):
    """log p_s: move away from the source towards any other class (no target needed)."""

    kind: Literal["away"] = "away"


ValidityLossConfig = Annotated[
    GeneralValidityLoss | TargetCrossEntropyLoss | BinaryStretchLoss | StretchLoss | AwayLoss,
    Field(discriminator="kind"),
]
