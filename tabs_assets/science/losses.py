"""Validity losses (SCIENCE.md §3): per-row, lower is better; explainers descend along -grad.

Every loss takes logits of shape [..., C] and labels whose shape broadcasts *from the right*
against the leading shape of the logits: for path logits [S, B, C], labels [B] are used as
label[b] for every step i (element [i, b]) and labels [S, B] are used as they are. The labels are
broadcast explicitly and gathered, never flattened and repeated (the research code's `repeat`
paired step-major logits with row-major labels: SCIENCE.md §9).
"""

from collections.abc import Callable

import torch
from torch import Tensor

from tabs_assets.config.losses import GeneralValidityLoss, ValidityLossConfig

PROBABILITY_FLOOR = 1e-18
"""p is clamped to at least this before the log of the general `log_prb` quantity."""


def align_labels(labels: Tensor, logits: Tensor) -> Tensor:
    """Broadcast labels (a right-aligned suffix of logits' leading shape) to logits[..., 0]."""
    leading = logits.shape[:-1]
    if labels.dim() > len(leading) or labels.shape != leading[len(leading) - labels.dim() :]:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} do not match logits of shape "
            f"{tuple(logits.shape)}: expected a right-aligned suffix of {tuple(leading)}"
        )
    return labels.to(device=logits.device, dtype=torch.long).expand(leading)


def pick(values: Tensor, labels: Tensor) -> Tensor:
    """values[..., labels[...]] for values [..., C] and broadcastable labels: shape [...]."""
    return values.gather(-1, align_labels(labels, values).unsqueeze(-1)).squeeze(-1)


def class_quantity(logits: Tensor, quantity: str) -> Tensor:
    """k per class: the logit, the probability, or the log of the (floored) probability."""
    if quantity == "logit":
        return logits
    probabilities = torch.softmax(logits, dim=-1)
    if quantity == "prb":
        return probabilities
    if quantity == "log_prb":
        return probabilities.clamp_min(PROBABILITY_FLOOR).log()
    raise ValueError(f"unknown loss quantity {quantity!r}")


def class_weights(config: GeneralValidityLoss) -> tuple[float, float]:
    """(w_s, w_o) for the general family from ``classes`` and ``weight``."""
    if config.classes == "target":
        return 0.0, 0.0
    if config.classes == "source":
        return config.weight, 0.0
    return config.weight, config.weight


def general_loss(
    logits: Tensor, source: Tensor, target: Tensor, config: GeneralValidityLoss
) -> Tensor:
    """L = -k_t + w_s k_s + w_o sum_{c not in {s, t}} k_c."""
    k = class_quantity(logits, config.quantity)
    source_weight, others_weight = class_weights(config)
    loss = -pick(k, target) + source_weight * pick(k, source)
    if others_weight != 0.0:
        n_classes = logits.shape[-1]
        named = torch.nn.functional.one_hot(align_labels(source, logits), n_classes).bool()
        named |= torch.nn.functional.one_hot(align_labels(target, logits), n_classes).bool()
        loss = loss + others_weight * k.masked_fill(named, 0.0).sum(-1)
    return loss


def target_ce_loss(
    logits: Tensor, source: Tensor, target: Tensor, config: ValidityLossConfig
) -> Tensor:
    """-log p_t."""
    return -pick(torch.log_softmax(logits, dim=-1), target)


def binary_stretch_loss(
    logits: Tensor, source: Tensor, target: Tensor, config: ValidityLossConfig
) -> Tensor:
    """(log p_s - log p_t) / 2."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (pick(log_p, source) - pick(log_p, target)) / 2


def stretch_loss(
    logits: Tensor, source: Tensor, target: Tensor, config: ValidityLossConfig
) -> Tensor:
    """(2 CE(f, t) - sum_c CE(f, c)) / C, with CE(f, c) = -log p_c."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (-2 * pick(log_p, target) + log_p.sum(-1)) / logits.shape[-1]


def away_loss(logits: Tensor, source: Tensor, target: Tensor, config: ValidityLossConfig) -> Tensor:
    """log p_s (``target`` is not used)."""
    return pick(torch.log_softmax(logits, dim=-1), source)


# Each loss config's formula, by its ``kind``: (logits, source, target, config) -> loss [...].
FORMULAS: dict[str, Callable[..., Tensor]] = {
    "general": general_loss,
    "target_ce": target_ce_loss,
    "binary_stretch": binary_stretch_loss,
    "stretch": stretch_loss,
    "away": away_loss,
}


def validity_loss(
    logits: Tensor, source: Tensor, target: Tensor, config: ValidityLossConfig
) -> Tensor:
    """Per-row validity loss [...] for logits [..., C]; no reduction.

    ``source``/``target`` are [...] or a right-aligned suffix of it (e.g. [B] for [S, B, C]).
    The away loss ignores ``target``.
    """
    return FORMULAS[config.kind](logits, source, target, config)
