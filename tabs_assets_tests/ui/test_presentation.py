"""tabs_assets.ui.presentation: links, run names and configs in words, as the UIs show them."""

from pathlib import Path

import pytest

from tabs_assets import settings
from tabs_assets.config.study import expand_study
from tabs_assets.defs.resources import TrackingResource
from tabs_assets.ui import describe, links
from tabs_assets_tests.conftest import REPO


def test_links_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(settings.MLFLOW_UI_ENV, raising=False)
    manifest = {"mlflow_run_id": "abc", "mlflow_url": "http://old:5000/#/experiments/7/runs/abc"}
    assert links.stored_mlflow_url(manifest) == (
        "http://127.0.0.1:5000/#/experiments/7/runs/abc?workflowType=machine_learning"
    )
    monkeypatch.setenv(settings.MLFLOW_UI_ENV, "https://mlflow.lab/")
    monkeypatch.setenv(settings.DAGSTER_UI_ENV, "https://dagster.lab")
    assert links.stored_mlflow_url(manifest) == (
        "https://mlflow.lab/#/experiments/7/runs/abc?workflowType=machine_learning"
    )
    assert links.dagster_asset_url("plots", "a-1") == (
        "https://dagster.lab/assets/plots?view=partitions&partition=a-1"
    )
    assert describe.round_sig(109.92269069105748) == 109.9


def test_mlflow_links_open_the_run_in_the_model_training_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow 3 opens GenAI pages unless the hash route's query says workflowType."""
    monkeypatch.delenv(settings.MLFLOW_UI_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    expected = "http://mlflow.team:5000/#/experiments/3/runs/r1?workflowType=machine_learning"
    assert TrackingResource().run_url("3", "r1") == expected
    assert links.mlflow_run_url("3", "r1") == expected
    configured = TrackingResource(ui_url="https://ui.lab/").run_url("3", "r1")
    assert configured == "https://ui.lab/#/experiments/3/runs/r1?workflowType=machine_learning"


def test_a_partition_links_to_a_page_that_exists_for_its_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A study partition has study assets only: its parent run opens study_report."""
    monkeypatch.delenv(settings.DAGSTER_UI_ENV, raising=False)
    from tabs_assets.defs.definitions import defs

    assets = {key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    study = links.dagster_partition_url("tiny-1a2b3c4d", is_study=True)
    config = links.dagster_partition_url("quickstart-0914f6d3", is_study=False)
    assert study == (
        "http://127.0.0.1:3000/assets/study_report?view=partitions&partition=tiny-1a2b3c4d"
    )
    assert config.startswith("http://127.0.0.1:3000/assets/explanation_metrics?")
    assert {links.STUDY_PAGE_ASSET, links.CONFIG_PAGE_ASSET} <= assets


def _seed_only_members(tmp_path: Path) -> list:
    study = tmp_path / "seeds.yaml"
    study.write_text(
        f"""study:
  name: seeds
  base: [{REPO / "experiments" / "quickstart.yaml"}]
  sweep: {{dataset: [{{kind: sklearn, name: wine}}], explainer: [{{method: revise}}]}}
  seeds: {{values: [3, 4]}}
"""
    )
    return expand_study(study).members


def test_members_that_differ_only_in_their_seed_read_differently(tmp_path: Path) -> None:
    first, second = _seed_only_members(tmp_path)
    names = [describe.run_name(m.resolved.config, m.labels) for m in (first, second)]
    assert names == [
        "seeds · sklearn:wine · revise · seed=3",
        "seeds · sklearn:wine · revise · seed=4",
    ]
    words = [describe.config_in_words(m.resolved.config) for m in (first, second)]
    assert words[0]["seeds"] != words[1]["seeds"]
    assert "generative_model.training.seed=3" in words[0]["seeds"]
    assert "generative_model.training.seed=4" in words[1]["seeds"]
    assert words[0]["description"].endswith(": sklearn:wine, revise, seed=3.")
    assert {k: v for k, v in words[0].items() if k not in ("seeds", "description")} == {
        k: v for k, v in words[1].items() if k not in ("seeds", "description")
    }


def test_a_config_of_its_own_is_named_by_what_it_runs(tmp_path: Path) -> None:
    from tabs_assets.config.loading import resolve_config

    config = resolve_config([REPO / "experiments" / "quickstart.yaml"]).config
    assert describe.run_name(config, None) == (
        "quickstart · cake_on_sea · nice · latent_shift · logit/source"
    )
    assert describe.study_run_name("tiny", 4) == "tiny · study of 4 members"
    words = describe.config_in_words(config)
    assert (words["classifier"], words["explainer"]) == (
        "default",
        "latent_shift (n_steps=99, step_size=0.01)",
    )
    with_batch_norm = resolve_config(
        [REPO / "experiments" / "quickstart.yaml"], ["classifier.batch_norm=true"]
    )
    assert describe.config_in_words(with_batch_norm.config)["classifier"] == "batch_norm=true"
