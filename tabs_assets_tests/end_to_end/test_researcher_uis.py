"""End to end: two configs compared in MLflow, their cached results shown in Dagster."""

import hashlib
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from mlflow.tracking import MlflowClient

from tabs_assets import settings
from tabs_assets.cli.main import main
from tabs_assets.defs import metadata
from tabs_assets.defs.runs import materialize_partition
from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets.tracking.session import (
    EXPERIMENT_KIND_TAG,
)
from tabs_assets.tracking.tags import DAGSTER_ASSET_TAG, DAGSTER_RUN_TAG
from tabs_assets_tests.conftest import FAST_OVERRIDES, materialization_metadata, write_config

pytestmark = pytest.mark.integration


def _client(store: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _latest(instance: DagsterInstance, asset: str, partition: str):
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def test_two_configs_compare_in_mlflow_and_cached_results_show_in_dagster(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_root = project_env["store"]
    shift = register("shift", {**FAST_OVERRIDES, "description": "Latent Shift baseline"})
    assert materialize_partition(shift).success

    # A second config sharing dataset and models: registering it shows them as materialized.
    path = write_config(
        project_env["experiments"], "revise", {**FAST_OVERRIDES, "explainer.method": "revise"}
    )
    result = CliRunner().invoke(main, ["register", str(path)])
    assert result.exit_code == 0, result.output
    assert "shown as materialized in Dagster" in result.output
    [revise] = [k for k in Registry(store_root).config_keys() if k.startswith("revise-")]
    instance = DagsterInstance.get()
    config = Registry(store_root).config(revise)
    for asset in ("dataset", "classifier", "reference_density"):
        materialization = _latest(instance, asset, revise)
        assert materialization is not None, asset
        assert materialization.tags["dagster/data_version"] == entry_address(asset, config)[1]
        assert materialization.metadata["cache"].value == "hit (registered)"
    assert _latest(instance, "counterfactual_paths", revise) is None  # not in the store yet
    again = CliRunner().invoke(main, ["register", str(path)])  # idempotent: nothing new
    assert "shown as materialized" not in again.output

    assert materialize_partition(revise, "*explanation_metrics").success

    client = _client(store_root)
    experiment = client.get_experiment_by_name("tabs_assets")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    for method, key in (("latent_shift", shift), ("revise", revise)):
        [parent] = client.search_runs(
            [experiment.experiment_id],
            filter_string=(
                f"params.`explainer.method` = '{method}' and tags.`tabs_assets.role` = 'partition'"
            ),
        )
        assert parent.data.tags["tabs_assets.partition_key"] == key
        assert 0 <= parent.data.metrics["validity_rate"] <= 1
        assert "classifier_test_accuracy" in parent.data.metrics  # a cache hit for `revise`
        assert parent.data.params["dataset.n_points"] == "6000"
        n_train = Store(store_root).lookup(*entry_address("dataset", config)).manifest["report"]
        n_train = n_train["metrics"]["n_train"]
        assert parent.data.params["classifier.training.batch_size"] == str(math.ceil(n_train / 20))
        [dataset_input] = client.get_run(parent.info.run_id).inputs.dataset_inputs
        assert dataset_input.dataset.digest == entry_address("dataset", config)[1]
        assert parent.data.tags["mlflow.note.content"]
    [shift_parent] = client.search_runs(
        [experiment.experiment_id],
        f"tags.`tabs_assets.partition_key` = '{shift}' and tags.`tabs_assets.role` = 'partition'",
    )
    assert "Latent Shift baseline" in shift_parent.data.tags["mlflow.note.content"]

    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    for run in runs:
        tags = run.data.tags
        assert tags["mlflow.source.git.commit"]
        assert tags[DAGSTER_ASSET_TAG].startswith("http://127.0.0.1:3000/assets/")
        assert run.info.status == "FINISHED"
        if tags["tabs_assets.role"] == "asset":
            assert tags[DAGSTER_RUN_TAG].startswith("http://127.0.0.1:3000/runs/")
            seconds = run.data.metrics["compute_seconds"]
            assert run.info.end_time - run.info.start_time >= seconds * 1000 - 2

    # Every figure in MLflow is the store's full-size file, under its own path.
    [plots_run] = [r for r in runs if r.data.tags.get("tabs_assets.asset") == "plots"]
    entry = Store(store_root).lookup(*entry_address("plots", Registry(store_root).config(shift)))
    download = project_env["store"].parent / "download"
    download.mkdir()
    local = Path(client.download_artifacts(plots_run.info.run_id, "", str(download)))
    logged = {p.relative_to(local): p for p in local.rglob("*") if p.is_file()}
    figures = [p for p in logged if p.suffix in {".png", ".svg"}]
    assert figures and not any(p.parts[0] == "previews" for p in logged)
    for relative in figures:
        assert _sha256(logged[relative]) == _sha256(entry.path / relative), relative
    stored = {
        p.relative_to(entry.path)
        for p in entry.path.rglob("*.png")
        if p.relative_to(entry.path).parts[0] != "previews"
    }
    assert stored == {p for p in figures if p.suffix == ".png"}

    # Dagster metadata: words, rounded metrics, small previews, today's MLflow URL.
    monkeypatch.setenv(settings.MLFLOW_UI_ENV, "http://mlflow.example:8080")
    rerun = materialize_partition(shift)
    meta = materialization_metadata(rerun)
    assert {m["cache"] for m in meta.values()} == {"hit"}
    assert meta["plots"]["mlflow_run"].startswith("http://mlflow.example:8080/#/experiments/")
    assert meta["explanation_metrics"]["config.explainer"].startswith("latent_shift")
    assert meta["explanation_metrics"]["config.description"] == "Latent Shift baseline"
    lof = meta["explanation_metrics"]["lof_auc"]
    assert lof == float(f"{lof:.4g}")
    assert "meaning" in meta["explanation_metrics"]["metrics (meaning, unit)"]
    events = rerun.get_asset_materialization_events()
    sizes = {
        e.materialization.asset_key.path[-1]: metadata.metadata_size(e.materialization.metadata)
        for e in events
    }
    assert max(sizes.values()) < 80_000, sizes
