"""Validity loss configs (SCIENCE.md §3). Lower is better; explainers descend along -grad."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tabs_assets.config.base import StrictModel

DEFAULT_CLASS_WEIGHT = 1.0


class GeneralValidityLoss(StrictModel):
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


class TargetCrossEntropyLoss(StrictModel):
    """-log p_t."""

    kind: Literal["target_ce"] = "target_ce"

    @property
    def label(self) -> str:
        return "target_ce"


class BinaryStretchLoss(StrictModel):
    """(log p_s - log p_t) / 2."""

    kind: Literal["binary_stretch"] = "binary_stretch"

    @property
    def label(self) -> str:
        return "binary_stretch"


class StretchLoss(StrictModel):
    """(2 CE(f, t) - sum_c CE(f, c)) / C."""

    kind: Literal["stretch"] = "stretch"

    @property
    def label(self) -> str:
        return "stretch"


class AwayLoss(StrictModel):
    """log p_s: move away from the source towards any other class (no target needed)."""

    kind: Literal["away"] = "away"

    @property
    def label(self) -> str:
        return "away"


ValidityLossConfig = Annotated[
    GeneralValidityLoss | TargetCrossEntropyLoss | BinaryStretchLoss | StretchLoss | AwayLoss,
    Field(discriminator="kind"),
]
