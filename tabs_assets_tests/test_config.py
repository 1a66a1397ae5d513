"""Config loading, precedence, sources, studies and the documentation that describes them."""

from pathlib import Path

import pytest

from tabs_assets.config.loading import ConfigError, resolve_config
from tabs_assets.config.reference import config_reference
from tabs_assets.config.study import expand_study
from tabs_assets_tests.conftest import REPO


def test_precedence_defaults_file_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: p\nclassifier:\n  hidden: [7]\n  dropout: 0.2\n")
    resolved = resolve_config([path], ["classifier.dropout=0.3"])
    assert resolved.config.classifier.hidden == [7]
    assert resolved.config.classifier.dropout == 0.3
    assert resolved.sources["classifier.hidden"] == f"file: {path}"
    assert resolved.sources["classifier.dropout"] == "override (-o)"
    assert resolved.sources["classifier.batch_norm"] == "default"


def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    base, top = tmp_path / "base.yaml", tmp_path / "top.yaml"
    base.write_text("name: b\nexplainer: {method: revise, n_steps: 5}\n")
    top.write_text("explainer: {n_steps: 7}\n")
    config = resolve_config([base, top]).config
    assert (config.explainer.method, config.explainer.n_steps) == ("revise", 7)


def test_override_replacing_a_union_member_validates_the_new_kind() -> None:
    config = resolve_config([], ["name=u", "dataset={kind: sklearn, name: wine}"]).config
    assert config.dataset.kind == "sklearn" and config.dataset.split.seed == 0


def test_loss_weight_without_effect_is_rejected() -> None:
    with pytest.raises(ConfigError, match="loss: weight has no effect"):
        resolve_config([], ["name=x", "loss.classes=target", "loss.weight=0.1"])


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        resolve_config([path])


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


def test_readme_config_reference_is_current() -> None:
    assert config_reference() in (REPO / "README.md").read_text()
