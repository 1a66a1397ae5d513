"""tabs_assets.science.losses (SCIENCE.md §3): against hand-computed values."""

import math

import pytest
import torch

from tabs_assets.config.losses import (
    AwayLoss,
    BinaryStretchLoss,
    GeneralValidityLoss,
    StretchLoss,
    TargetCrossEntropyLoss,
)
from tabs_assets.science.losses import FORMULAS, PROBABILITY_FLOOR, validity_loss

# log of known probabilities: softmax gives them back exactly up to float rounding.
PROBABILITIES = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
LOGITS = PROBABILITIES.log()
SOURCE = torch.tensor([0])
TARGET = torch.tensor([3])


def loss_of(config, logits=LOGITS, source=SOURCE, target=TARGET) -> torch.Tensor:
    return validity_loss(logits, source, target, config)


def test_logit_source_is_minus_target_plus_source_logit() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    loss = validity_loss(logits, torch.tensor([0, 2]), torch.tensor([2, 1]), GeneralValidityLoss())
    # -f_t + f_s: row 0: -3 + 1; row 1: -(-1) + 4.
    assert torch.allclose(loss, torch.tensor([-2.0, 5.0]))


@pytest.mark.parametrize(
    ("quantity", "classes", "weight", "expected"),
    [
        ("prb", "target", 1.0, -0.4),
        ("prb", "source", 0.5, -0.4 + 0.5 * 0.1),
        ("prb", "others", 0.5, -0.4 + 0.5 * 0.1 + 0.5 * (0.2 + 0.3)),
        ("log_prb", "target", 1.0, -math.log(0.4)),
        ("log_prb", "source", 1.0, -math.log(0.4) + math.log(0.1)),
        ("log_prb", "others", 0.1, -math.log(0.4) + 0.1 * math.log(0.1 * 0.2 * 0.3)),
        ("logit", "others", 2.0, -math.log(0.4) + 2 * math.log(0.1 * 0.2 * 0.3)),
    ],
)
def test_general_family(quantity: str, classes: str, weight: float, expected: float) -> None:
    config = GeneralValidityLoss(quantity=quantity, classes=classes, weight=weight)
    assert loss_of(config).item() == pytest.approx(expected, rel=1e-9)


def test_log_prb_clamps_probability_before_log() -> None:
    logits = torch.tensor([[0.0, -1000.0]])  # p_1 underflows to 0
    config = GeneralValidityLoss(quantity="log_prb", classes="target")
    loss = validity_loss(logits, torch.tensor([0]), torch.tensor([1]), config)
    assert loss.item() == pytest.approx(-math.log(PROBABILITY_FLOOR), rel=1e-6)


def test_named_losses() -> None:
    p_s, p_t = 0.1, 0.4
    assert loss_of(TargetCrossEntropyLoss()).item() == pytest.approx(-math.log(p_t))
    assert loss_of(BinaryStretchLoss()).item() == pytest.approx((math.log(p_s) - math.log(p_t)) / 2)
    all_ce = -sum(math.log(p) for p in (0.1, 0.2, 0.3, 0.4))
    assert loss_of(StretchLoss()).item() == pytest.approx((2 * -math.log(p_t) - all_ce) / 4)
    assert loss_of(AwayLoss()).item() == pytest.approx(math.log(p_s))
    # Away ignores the target.
    assert loss_of(AwayLoss(), target=torch.tensor([1])).item() == pytest.approx(math.log(p_s))


def test_leading_shape_is_kept_without_reduction() -> None:
    logits = torch.randn(5, 7, 3)
    labels = torch.zeros(7, dtype=torch.long)
    assert validity_loss(logits, labels, labels + 1, GeneralValidityLoss()).shape == (5, 7)


def test_path_logits_use_the_label_of_their_row_at_every_step() -> None:
    # logits [S=2, B=3, C=3]; element [i, b] must use source[b] / target[b].
    logits = torch.arange(18, dtype=torch.float32).reshape(2, 3, 3) ** 1.5
    source = torch.tensor([0, 1, 2])
    target = torch.tensor([1, 2, 0])
    loss = validity_loss(logits, source, target, GeneralValidityLoss())
    expected = torch.tensor(
        [[-logits[i, b, target[b]] + logits[i, b, source[b]] for b in range(3)] for i in range(2)]
    )
    assert torch.allclose(loss, expected)
    # Labels already of shape [S, B] are used as they are.
    same = validity_loss(logits, source.expand(2, 3), target.expand(2, 3), GeneralValidityLoss())
    assert torch.equal(same, loss)
    # A misaligned pairing (row-major labels against step-major flattened logits) differs.
    flat = logits.reshape(6, 3)
    wrong = validity_loss(
        flat, source.repeat_interleave(2), target.repeat_interleave(2), GeneralValidityLoss()
    )
    assert not torch.allclose(wrong.reshape(2, 3), expected)


def test_mismatched_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="do not match"):
        validity_loss(torch.zeros(2, 3, 4), torch.zeros(2), torch.zeros(2), GeneralValidityLoss())


def test_every_loss_config_has_a_formula_a_label_and_a_weight() -> None:
    configs = [GeneralValidityLoss(weight=0.5), TargetCrossEntropyLoss(), BinaryStretchLoss()]
    configs += [StretchLoss(), AwayLoss()]
    assert set(FORMULAS) == {config.kind for config in configs}
    assert [config.label for config in configs] == [
        "logit/source",
        "target_ce",
        "binary_stretch",
        "stretch",
        "away",
    ]
    assert configs[0].loss_weight == 0.5
    assert all(math.isnan(config.loss_weight) for config in configs[1:])
