"""tabs_assets.config.loading: defaults < files < overrides, sources, descriptions, errors."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.config.errors import ConfigError
from tabs_assets.config.loading import resolve_config
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


def test_missing_values_are_reported_all_at_once(project_env) -> None:
    path = project_env["experiments"] / "bad.yaml"
    path.write_text("dataset:\n  kind: tabular_file\n")
    result = CliRunner().invoke(main, ["register", str(path)])
    for dotted in ("name", "dataset.path", "dataset.label_column"):
        assert f"{dotted}: required value is missing" in result.output


def test_yaml_1_2_floats_and_merge_keys_still_work(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: ok\nclassifier:\n  training: &t {max_epochs: 3, learning_rate: 1e-2}\n"
        "generative_model:\n  training: {<<: *t, max_epochs: 4}\n"
    )
    config = resolve_config([path]).config
    assert config.classifier.training.learning_rate == 0.01
    assert config.generative_model.training.max_epochs == 4
