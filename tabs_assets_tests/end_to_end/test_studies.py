"""End to end: a study run through Dagster, what the UIs show of it, a rerun from cache."""

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES


def _study_file(directory: Path) -> Path:
    base = directory / "base.yaml"
    data: dict = {"name": "base"}
    for key, value in FAST_OVERRIDES.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    base.write_text(yaml.safe_dump(data))
    study = directory / "tiny_study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "study": {
                    "name": "tiny",
                    "base": ["base.yaml"],
                    "sweep": {"explainer.method": ["latent_shift", "revise"]},
                    "seeds": {"values": [1, 2]},
                    "report": {
                        "rows": ["dataset"],
                        "columns": ["explainer"],
                        "metrics": ["validity_rate", "time_per_step_ns"],
                        "boxplots": ["l1_auc"],
                    },
                }
            }
        )
    )
    return study


@pytest.mark.integration
def test_study_runs_end_to_end_and_reruns_from_cache(project_env) -> None:
    study = _study_file(project_env["experiments"])
    runner = CliRunner()
    first = runner.invoke(main, ["study", "run", str(study)])
    assert first.exit_code == 0, first.output
    assert "member 4/4" in first.output
    [study_key] = Registry(project_env["store"]).study_keys()
    store = Store(project_env["store"])
    [table_entry] = [e for e in store.entries() if e.asset == "study_table"]
    members = pd.read_csv(table_entry.path / "members.csv")
    aggregated = pd.read_csv(table_entry.path / "aggregated.csv")
    assert len(members) == 4 and set(members["seed"]) == {1, 2}
    assert len(aggregated) == 2  # one group per explainer, seeds averaged
    for method, group in members.groupby("explainer"):
        row = aggregated[aggregated["explainer"] == method].iloc[0]
        values = group["validity_rate"].tolist()
        assert row["validity_rate_mean"] == pytest.approx(sum(values) / 2)
        assert row["validity_rate_sem"] == pytest.approx(abs(values[0] - values[1]) / 2)
    [report_entry] = [e for e in store.entries() if e.asset == "study_report"]
    files = {p.name for p in report_entry.path.iterdir()}
    assert {
        "validity_rate.csv",
        "validity_rate.md",
        "validity_rate.tex",
        "report.md",
        "method_boxplots_cake_on_sea.png",
        "method_boxplots_cake_on_sea.svg",
    } <= files
    table = pd.read_csv(report_entry.path / "validity_rate.csv", index_col=0)
    assert list(table.columns) == ["latent_shift", "revise"]

    # Both methods explain the same points towards the same targets.
    registry = Registry(project_env["store"])
    by_method: dict[str, list] = {}
    for key in registry.study(study_key).member_keys:
        config = registry.config(key)
        entry = store.verify(*entry_address("counterfactual_paths", config))
        by_method.setdefault(config.explainer.method, []).append(
            CounterfactualPaths.load(entry.path)
        )
    for shift, revise in zip(by_method["latent_shift"], by_method["revise"], strict=True):
        assert torch.equal(shift.inputs, revise.inputs)
        assert torch.equal(shift.targets, revise.targets)
        assert (shift.targets != shift.sources).all()

    _assert_what_the_uis_show(project_env["store"], study_key)

    second = runner.invoke(main, ["study", "run", study_key])
    assert second.exit_code == 0, second.output
    assert "4 already in the store, 0 to run" in second.output
    assert "study_table            cache hit" in second.output


def _assert_what_the_uis_show(store_root: Path, study_key: str) -> None:
    """Member runs and metadata say what sets each member apart; the study links to itself."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
    from mlflow.tracking import MlflowClient

    from tabs_assets.tracking.tags import DAGSTER_ASSET_TAG

    record = Registry(store_root).study(study_key)
    client = MlflowClient(tracking_uri=f"sqlite:///{store_root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tabs_assets")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`tabs_assets.role` = 'partition'"
    )
    names = {run.data.tags["tabs_assets.partition_key"]: run.info.run_name for run in parents}
    for run in parents:  # shared models' headlines reach every member, not only the first
        if run.data.tags["tabs_assets.partition_key"] in record.member_keys:
            headlines = {"classifier_test_accuracy", "reference_density_test_nll", "validity_rate"}
            assert headlines <= set(run.data.metrics), run.info.run_name
            # One run per member: its explanations' files and keys are on its parent run.
            folders = {a.path for a in client.list_artifacts(run.info.run_id) if a.is_dir}
            assert {"counterfactual_paths", "explanation_metrics"} <= folders
            assert "tabs_assets.store_key.explanation_metrics" in run.data.tags
    children = client.search_runs([experiment.experiment_id], "tags.`tabs_assets.role` = 'asset'")
    trained = {"classifier", "generative_model", "reference_density"}
    member_children = {
        r.data.tags["tabs_assets.asset"]
        for r in children
        if r.data.tags["tabs_assets.partition_key"] in record.member_keys
    }
    assert member_children <= trained  # a training keeps its run: its learning curves
    assert sorted(names[key] for key in record.member_keys) == [
        f"tiny · method={method} · seed={seed}"
        for method in ("latent_shift", "revise")
        for seed in (1, 2)
    ]
    assert names[study_key] == "tiny · study of 4 members"
    [study_run] = [r for r in parents if r.data.tags["tabs_assets.partition_key"] == study_key]
    assert study_run.data.tags[DAGSTER_ASSET_TAG].endswith(
        f"/assets/study_report?view=partitions&partition={study_key}"
    )

    instance = DagsterInstance.get()

    def latest_metadata(asset: str, partition: str) -> dict:
        [latest] = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
        ).records
        return {k: v.value for k, v in latest.asset_materialization.metadata.items()}

    words = {
        (meta["config.description"], meta["config.seeds"])
        for meta in (latest_metadata("explanation_metrics", k) for k in record.member_keys)
    }
    assert len(words) == 4  # no two members read alike
    assert all(d.startswith("Member of study tiny: ") for d, _ in words)
    table = latest_metadata("study_table", study_key)
    members = table["members"].splitlines()
    assert len([line for line in members if "| tiny-" in line]) == 4
    assert members[-1] == "4 of 4 rows; all of them in `members.csv`."
    assert "mean ± SEM over seeds" in table
