"""tabs_assets.config.study: study files expanded into member configs."""

from pathlib import Path

import pytest

from tabs_assets.config.errors import ConfigError
from tabs_assets.config.loading import resolve_config
from tabs_assets.config.study import METRICS, expand_study
from tabs_assets_tests.conftest import REPO


def test_study_metric_names_are_the_metrics_computed() -> None:
    from tabs_assets.science.metrics import path_metrics
    from tabs_assets_tests.science.test_metrics import (
        CONFIG,
        TRAIN,
        TRAIN_LABELS,
        X_MAX,
        SquaredNormDensity,
        crafted_paths,
    )

    computed = path_metrics(
        crafted_paths(), SquaredNormDensity(), TRAIN, TRAIN_LABELS, X_MAX, CONFIG, 0
    )
    assert set(computed) == set(METRICS)


QUICKSTART = REPO / "experiments" / "quickstart.yaml"


QUICKSTART_DESCRIPTION = "Cake on sea, default models, Latent Shift paths on the test split."


def test_study_expands_grids_and_seeds(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        f"""study:
  name: s
  base: [{REPO / "experiments" / "quickstart.yaml"}]
  set: {{explanation.max_points: 10}}
  sweep:
    - {{loss.quantity: [logit, prb], loss.weight: [1.0, 0.1]}}
    - {{loss.classes: [target]}}
  seeds: {{values: [1, 2]}}
"""
    )
    resolved = expand_study(study)
    assert len(resolved.members) == (4 + 1) * 2
    seeds = {m.resolved.config.generative_model.training.seed for m in resolved.members}
    assert seeds == {1, 2}
    assert all(m.resolved.config.explanation.max_points == 10 for m in resolved.members)
    assert all(m.partition_key.startswith("s-") for m in resolved.members)


def test_study_reports_every_bad_member(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "study:\n  name: s\n  sweep: {loss.classes: [target], loss.weight: [0.5, 0.1]}\n"
    )
    with pytest.raises(ConfigError) as error:
        expand_study(study)
    assert len(error.value.problems) == 2


def test_study_members_describe_themselves_not_the_base_file(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        f"""study:
  name: s
  description: Two explainers on wine.
  base: [{QUICKSTART}]
  sweep:
    dataset: [{{kind: sklearn, name: wine}}]
    explainer: [{{method: latent_shift}}, {{method: revise, distance_weight: 0.1}}]
    loss.weight: [0.5]
  seeds: {{values: [1, 2]}}
"""
    )
    descriptions = sorted(m.resolved.config.description for m in expand_study(study).members)
    words = [
        "sklearn:wine, latent_shift, weight=0.5, seed=1",
        "sklearn:wine, latent_shift, weight=0.5, seed=2",
        "sklearn:wine, revise+l1(0.1), weight=0.5, seed=1",
        "sklearn:wine, revise+l1(0.1), weight=0.5, seed=2",
    ]
    assert descriptions == [
        f'Member of study s ("Two explainers on wine."): {member}.' for member in words
    ]
    set_by_study = study.read_text().replace("  sweep:", "  set: {description: Mine.}\n  sweep:")
    study.write_text(set_by_study)
    assert {m.resolved.config.description for m in expand_study(study).members} == {"Mine."}


def test_shipped_configs_describe_what_they_run() -> None:
    """The examples: the quickstart is what its description says; no member repeats it."""
    quickstart = resolve_config([QUICKSTART]).config
    assert (quickstart.dataset.kind, quickstart.explainer.method) == ("cake_on_sea", "latent_shift")
    assert quickstart.explanation.split == "test"
    for path in sorted((REPO / "experiments" / "studies").glob("*.yaml")):
        resolved = expand_study(path)
        for member in resolved.members:
            description = member.resolved.config.description
            assert description.startswith(f"Member of study {resolved.study.name} ("), path
            assert QUICKSTART_DESCRIPTION not in description, path
