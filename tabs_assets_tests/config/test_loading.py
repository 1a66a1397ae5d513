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


QUICKSTART = REPO / "experiments" / "quickstart.yaml"
QUICKSTART_DESCRIPTION = "Cake on sea, default models, Latent Shift paths on the test split."


def test_a_description_is_kept_only_for_the_config_it_describes(tmp_path: Path) -> None:
    assert resolve_config([QUICKSTART]).config.description == QUICKSTART_DESCRIPTION
    revise = resolve_config([QUICKSTART], ["explainer.method=revise"])
    assert revise.config.description == (
        f'quickstart.yaml ("{QUICKSTART_DESCRIPTION}") with explainer.method=revise'
    )
    assert revise.sources["description"].startswith("derived")
    renamed = resolve_config([QUICKSTART], ["name=other"])  # the name changes no result
    assert renamed.config.description == QUICKSTART_DESCRIPTION
    own = resolve_config([QUICKSTART], ["explainer.method=revise", "description=REVISE"])
    assert own.config.description == "REVISE"
    top = tmp_path / "top.yaml"
    top.write_text("explainer: {method: revise}\n")
    assert resolve_config([QUICKSTART, top]).config.description == (
        f'quickstart.yaml ("{QUICKSTART_DESCRIPTION}") with top.yaml'
    )


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


def test_readme_config_reference_is_current() -> None:
    assert config_reference() in (REPO / "README.md").read_text()
